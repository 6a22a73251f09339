"""Export (HF -> CTranslate2): a loadable, checked directory, or one line and nothing left."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import leftovers

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.manifest import make_record, write_jsonl
from whisperforge.decode.transcribe import pick_device_and_compute_type
from whisperforge.model.export import export_ct2


def test_export_writes_a_loadable_ct2_dir(tiny, exported):
    out_dir, facts = exported
    for name in ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json"):
        assert (out_dir / name).is_file(), name
    mel = json.loads((out_dir / "preprocessor_config.json").read_text())["feature_size"]
    assert mel == json.loads((tiny / "config.json").read_text())["num_mel_bins"] == 80
    assert facts["num_mel_bins"] == 80
    assert facts["quantization"] == "float16"
    assert facts["probe_id"] == "UTT_B"
    assert isinstance(facts["probe_text"], str)
    assert (facts["device"], facts["compute_type"]) == pick_device_and_compute_type("auto")
    assert facts["seconds"] > 0
    assert leftovers(out_dir.parent, {out_dir.name}) == []  # temp dir renamed, nothing else


def test_export_of_an_adapter_dir_says_merge_first(tmp_path, manifest):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    out_dir = tmp_path / "out" / "ct2-float16"
    with pytest.raises(WhisperforgeError, match="merge the adapter first") as err:
        export_ct2(adapter, out_dir, probe_manifest=manifest)
    assert str(adapter) in str(err.value)
    assert not out_dir.exists()


def test_export_without_weights_names_the_dir(tmp_path, tiny):
    model_dir = tmp_path / "noweights"
    shutil.copytree(tiny, model_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    out_dir = tmp_path / "out" / "ct2"
    with pytest.raises(WhisperforgeError, match=r"model\.safetensors") as err:
        export_ct2(model_dir, out_dir)
    assert str(model_dir) in str(err.value)
    assert not out_dir.exists()


def test_export_whose_probe_fails_leaves_nothing(tmp_path, tiny):
    probe = tmp_path / "probe.jsonl"
    write_jsonl(probe, [make_record("GONE", str(tmp_path / "gone.wav"), "x", 1.0)])
    out_dir = tmp_path / "out" / "ct2-int8"
    with pytest.raises(WhisperforgeError, match=r"gone\.wav") as err:
        export_ct2(tiny, out_dir, quantization="int8", probe_manifest=probe)
    assert str(tiny) in str(err.value)
    assert leftovers(out_dir.parent, set()) == []  # neither out_dir nor the temp dir


def test_export_with_mismatched_mel_bins_fails(tmp_path, tiny):
    model_dir = tmp_path / "mel128"
    shutil.copytree(tiny, model_dir)
    pre = model_dir / "preprocessor_config.json"
    pre.write_text(json.dumps({**json.loads(pre.read_text()), "feature_size": 128}))
    out_dir = tmp_path / "out" / "ct2"
    with pytest.raises(WhisperforgeError, match="128 mel bins") as err:
        export_ct2(model_dir, out_dir, quantization="int8")
    assert str(model_dir) in str(err.value)
    assert leftovers(out_dir.parent, set()) == []
