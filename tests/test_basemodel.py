"""The hub base model: a fetch that cannot reach the hub says so, naming the config key."""

from __future__ import annotations


def test_hub_fetch_fails_clearly_offline(tmp_path, monkeypatch):
    from whisperforge.core.errors import WhisperforgeError
    from whisperforge.model.fetch import fetch_hub_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        fetch_hub_model("openai/whisper-large-v3-turbo", "main", tmp_path / "m")
    except WhisperforgeError as e:
        assert str(e).startswith("config model.base: cannot fetch openai/whisper-large-v3-turbo")
    else:
        raise AssertionError("an offline fetch must fail with a clear error")


def test_model_base_is_resolved_once_by_what_it_names(tmp_path, monkeypatch):
    from whisperforge.core.basemodel import IMPORTED_DIR, resolve_base

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home/m").mkdir(parents=True)
    ct2 = tmp_path / "faster-whisper"
    ct2.mkdir()
    (ct2 / "model.bin").write_bytes(b"\0" * 8)
    (ct2 / "config.json").write_text('{"suppress_ids": [1]}')
    (tmp_path / "whisper-small").mkdir()

    assert resolve_base("tiny").hf_dir == IMPORTED_DIR
    hub = resolve_base("openai/whisper-base", "abc123", tmp_path)
    assert (hub.kind, hub.hub_id) == ("hub", "openai/whisper-base")
    assert hub.hf_dir == "resources/models/openai--whisper-base@abc123"
    home = resolve_base("~/m")
    assert (home.kind, home.hf_dir) == ("local", str(tmp_path / "home/m"))
    assert resolve_base("./not-yet").kind == "local"  # path-like: never a hub id
    # The first user's Windows paths, even before they exist (no `/` in them).
    assert resolve_base(r"D:\models\whisper-turbo-ct2").kind == "local"
    assert resolve_base("models/my base").kind == "local"  # no hub id has a space
    assert resolve_base("whisper-small", workdir=tmp_path).kind == "local"  # it exists there
    assert resolve_base("whisper-small", workdir=tmp_path / "home").kind == "hub"
    imported = resolve_base(str(ct2))
    assert (imported.kind, imported.hf_dir, imported.hub_id) == ("ct2", IMPORTED_DIR, None)


def test_a_local_base_under_home_is_trained_from_not_fetched(tmp_path, monkeypatch):
    """`model.base: ~/m` once passed validation and then planned a hub fetch of repo id ~/m."""
    import yaml
    from helpers import copy_workflow, snakemake

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # A transformers model folder as far as planning reads it (no torch: the Python 3.13 lane).
    (tmp_path / "home/m").mkdir(parents=True)
    (tmp_path / "home/m/config.json").write_text('{"model_type": "whisper"}')
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "home.yaml").write_text(yaml.safe_dump({"model": {"base": "~/m"}}))
    configs = ["config.yaml", "profiles/demo/demo.yaml", "home.yaml"]
    plan = snakemake(workdir, "-n", "--configfile", *configs).stdout
    assert "finetune" in plan and "merge" in plan
    assert "fetch_base_model" not in plan and "pretrain_base" not in plan
