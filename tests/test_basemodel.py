"""The hub base model: a fetch that cannot reach the hub says so, naming the config key."""

from __future__ import annotations


def test_hub_fetch_fails_clearly_offline(tmp_path, monkeypatch):
    from whisperforge.basemodel import fetch_hub_model
    from whisperforge.errors import WhisperforgeError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        fetch_hub_model("openai/whisper-large-v3-turbo", "main", tmp_path / "m")
    except WhisperforgeError as e:
        assert str(e).startswith("config model.base: cannot fetch openai/whisper-large-v3-turbo")
    else:
        raise AssertionError("an offline fetch must fail with a clear error")
