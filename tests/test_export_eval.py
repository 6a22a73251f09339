"""Export (HF -> CTranslate2), faster-whisper transcription and the speed comparison.

One tiny random Whisper is built per module, in two variants: `tiny`, whose decoder is pinned
to end every hypothesis after one (input-independent) token, which keeps most tests fast (a
random model otherwise babbles up to 448 tokens a clip), and `babble`, the same weights scaled up
so that different clips give different (garbage) texts, for comparing batched with unbatched
decoding. These tests check files, fields, order and plumbing, never text quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from whisperforge.errors import WhisperforgeError
from whisperforge.export import export_ct2, pick_device_and_compute_type
from whisperforge.manifest import make_record, read_manifest, write_jsonl
from whisperforge.speed import measure_speed
from whisperforge.tinymodel import build_tiny_whisper
from whisperforge.transcribe import transcribe_manifest

SR = 16000
EOT = 50257  # <|endoftext|> in the large-v3 id layout the tiny model uses


def _stop_after_one_token(model_dir: Path) -> None:
    """Make the decoder's output constant and <|endoftext|> its best token (tied embeddings)."""
    path = model_dir / "model.safetensors"
    weights = load_file(path)
    bias = torch.randn(weights["model.decoder.layer_norm.bias"].shape, generator=torch.Generator())
    weights["model.decoder.layer_norm.weight"].zero_()
    weights["model.decoder.layer_norm.bias"] = bias
    weights["model.decoder.embed_tokens.weight"][EOT] = 50 * bias / bias.norm()
    save_file(weights, path, metadata={"format": "pt"})


def _scale_weights(model_dir: Path, factor: float) -> None:
    """Scale every weight matrix: the random decoder's output then depends on the input."""
    path = model_dir / "model.safetensors"
    weights = load_file(path)
    for name, tensor in weights.items():
        if tensor.ndim == 2 and "embed_positions" not in name:
            weights[name] = tensor * factor
    save_file(weights, path, metadata={"format": "pt"})


def _write_wav(path: Path, seconds: float, freq: float) -> None:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(int(freq))
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, audio.astype(np.float32), SR, subtype="PCM_16")


def _manifest(path: Path, clips: list[tuple[str, float, str]]) -> Path:
    records = []
    for i, (utt_id, seconds, sentence) in enumerate(clips):
        wav = path.parent / f"{utt_id}.wav"
        _write_wav(wav, seconds, 220.0 + 110 * i)
        records.append(make_record(utt_id, str(wav), sentence, seconds))
    write_jsonl(path, records)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    tiny = build_tiny_whisper(root / "tiny")
    babble = root / "babble"
    shutil.copytree(tiny, babble)
    _scale_weights(babble, 4.0)
    _stop_after_one_token(tiny)
    return {"tiny": tiny, "babble": babble}


@pytest.fixture(scope="module")
def tiny(models) -> Path:
    return models["tiny"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    clips = [("UTT_B", 1.2, "央行下调存款准备金率"), ("UTT_A", 0.8, "楼市"), ("UTT_C", 2.0, "新政")]
    return _manifest(tmp_path_factory.mktemp("data") / "test.jsonl", clips)


@pytest.fixture(scope="module")
def exported(tiny, manifest, tmp_path_factory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("export") / "ct2-float16"
    facts = export_ct2(tiny, out_dir, quantization="float16", probe_manifest=manifest)
    return out_dir, facts


def _leftovers(parent: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


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
    assert _leftovers(out_dir.parent, {out_dir.name}) == []  # temp dir renamed, nothing else


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
    assert _leftovers(out_dir.parent, set()) == []  # neither out_dir nor the temp dir


def test_export_with_mismatched_mel_bins_fails(tmp_path, tiny):
    model_dir = tmp_path / "mel128"
    shutil.copytree(tiny, model_dir)
    pre = model_dir / "preprocessor_config.json"
    pre.write_text(json.dumps({**json.loads(pre.read_text()), "feature_size": 128}))
    out_dir = tmp_path / "out" / "ct2"
    with pytest.raises(WhisperforgeError, match="128 mel bins") as err:
        export_ct2(model_dir, out_dir, quantization="int8")
    assert str(model_dir) in str(err.value)
    assert _leftovers(out_dir.parent, set()) == []


def test_pick_device_and_compute_type(monkeypatch):
    """A CPU-only machine gets ("cpu", "default"): a float16 export cannot compute in float16."""
    import ctranslate2

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    assert pick_device_and_compute_type("auto") == ("cpu", "default")
    assert pick_device_and_compute_type("int8") == ("cpu", "int8")
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert pick_device_and_compute_type("auto") == ("cuda", "float16")
    assert pick_device_and_compute_type("int8_float16") == ("cuda", "int8_float16")


def _hyps(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("batch_size", "vad_filter"), [(1, False), (2, False), (1, True), (2, True)]
)
def test_transcribe_writes_one_line_per_utterance_in_order(
    tmp_path, exported, manifest, batch_size, vad_filter
):
    out = tmp_path / "eval" / "hyp.jsonl"
    facts = transcribe_manifest(
        exported[0],
        manifest,
        out,
        beam_size=1,
        batch_size=batch_size,
        vad_filter=vad_filter,
        progress=False,
    )
    hyps = _hyps(out)
    records = read_manifest(manifest)
    assert [h["id"] for h in hyps] == ["UTT_B", "UTT_A", "UTT_C"]
    for hyp, record in zip(hyps, records, strict=True):
        assert set(hyp) == {"id", "ref", "hyp", "audio_s", "decode_s"}
        assert hyp["ref"] == record["sentence"]
        assert isinstance(hyp["hyp"], str)
        assert hyp["audio_s"] == pytest.approx(record["duration"], abs=0.01)
        assert hyp["decode_s"] >= 0
    assert facts["n"] == 3
    assert facts["audio_s"] == pytest.approx(4.0, abs=0.01)
    assert facts["decode_s"] > 0 and facts["rtf"] > 0
    assert (facts["device"], facts["compute_type"]) == pick_device_and_compute_type("auto")
    assert _leftovers(out.parent, {"hyp.jsonl"}) == []


def test_batched_keeps_order_around_a_long_clip(tmp_path, exported):
    clips = [("S1", 1.0, "一"), ("L", 30.5, "二"), ("S2", 1.5, "三"), ("S3", 0.7, "四")]
    manifest = _manifest(tmp_path / "long.jsonl", clips)
    texts = {}
    for batch_size in (1, 2):
        out = tmp_path / f"hyp{batch_size}.jsonl"
        transcribe_manifest(
            exported[0], manifest, out, beam_size=2, batch_size=batch_size, progress=False
        )
        hyps = _hyps(out)
        assert [h["id"] for h in hyps] == ["S1", "L", "S2", "S3"]
        assert hyps[1]["audio_s"] == pytest.approx(30.5)
        texts[batch_size] = [h["hyp"] for h in hyps]
    assert texts[1] == texts[2]


def test_batched_and_unbatched_give_the_same_texts(tmp_path, models):
    ct2 = tmp_path / "ct2-int8"
    export_ct2(models["babble"], ct2, quantization="int8")
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SR)) / SR
    clips = {
        "tone": 0.3 * np.sin(2 * np.pi * 220 * t[: int(1.2 * SR)]),
        "noise": 0.3 * rng.standard_normal(int(0.8 * SR)),
        "chirp": 0.3 * np.sin(2 * np.pi * (200 + 1000 * t) * t),
        "quiet": 0.001 * rng.standard_normal(SR),
    }
    records = []
    for name, audio in clips.items():
        sf.write(tmp_path / f"{name}.wav", audio.astype(np.float32), SR, subtype="PCM_16")
        records.append(make_record(name, str(tmp_path / f"{name}.wav"), name, len(audio) / SR))
    manifest = tmp_path / "clips.jsonl"
    write_jsonl(manifest, records)
    texts = {}
    for batch_size in (1, 4):
        out = tmp_path / f"hyp{batch_size}.jsonl"
        transcribe_manifest(ct2, manifest, out, beam_size=2, batch_size=batch_size, progress=False)
        hyps = _hyps(out)
        assert [h["id"] for h in hyps] == list(clips)
        texts[batch_size] = [h["hyp"] for h in hyps]
    assert len(set(texts[1])) > 1, "the babbling model should tell these clips apart"
    assert texts[4] == texts[1]


def test_transcribe_rejects_a_dir_that_is_no_export(tmp_path, manifest):
    with pytest.raises(WhisperforgeError, match=r"model\.bin") as err:
        transcribe_manifest(tmp_path, manifest, tmp_path / "hyp.jsonl", progress=False)
    assert str(tmp_path) in str(err.value)
    assert not (tmp_path / "hyp.jsonl").exists()


def test_measure_speed_times_both_back_ends(tiny, exported, manifest):
    result = measure_speed(tiny, exported[0], manifest, n_utterances=2, beam_size=1)
    assert result["utterances"] == 2
    assert result["audio_s"] == pytest.approx(2.0, abs=0.01)
    assert result["hf"]["seconds"] > 0 and result["ct2"]["seconds"] > 0
    assert result["hf"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    ct2 = (result["ct2"]["device"], result["ct2"]["compute_type"])
    assert ct2 == pick_device_and_compute_type("auto")
    assert result["speedup"] > 0
    assert 0 <= result["hf_texts_equal_ct2"] <= 2
    json.dumps(result)  # JSON-able for write_json


def test_decoding_where_the_config_wants_a_gpu_stops_at_once_without_one(monkeypatch):
    import ctranslate2

    from whisperforge.transcribe import pick_device_and_compute_type

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    with pytest.raises(WhisperforgeError, match=r"^config train.device: cuda: CTranslate2 sees no"):
        pick_device_and_compute_type("auto", "cuda")
    assert pick_device_and_compute_type("auto", "cpu") == ("cpu", "default")
    assert pick_device_and_compute_type("auto", "auto") == ("cpu", "default")
