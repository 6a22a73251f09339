"""The faster-whisper runtime: device and compute type, and hyp.jsonl in manifest order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from helpers import EVAL, RATE, leftovers, read_hyps, tone_manifest

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.manifest import make_record, read_manifest, write_jsonl
from whisperforge.decode.transcribe import pick_device_and_compute_type, transcribe_manifest
from whisperforge.model.export import export_ct2


def test_pick_device_and_compute_type(monkeypatch):
    """A CPU-only machine gets ("cpu", "default"): a float16 export cannot compute in float16."""
    import ctranslate2

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    assert pick_device_and_compute_type("auto") == ("cpu", "default")
    assert pick_device_and_compute_type("int8") == ("cpu", "int8")
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert pick_device_and_compute_type("auto") == ("cuda", "float16")
    assert pick_device_and_compute_type("int8_float16") == ("cuda", "int8_float16")


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
        replace(EVAL, beam_size=1, batch_size=batch_size, vad_filter=vad_filter),
        progress=False,
    )
    hyps = read_hyps(out)
    records = read_manifest(manifest)
    assert [h["id"] for h in hyps] == ["UTT_B", "UTT_A", "UTT_C"]
    for hyp, record in zip(hyps, records, strict=True):
        assert set(hyp) == {"id", "ref", "hyp", "audio_s"}  # no timing: reproducible bytes
        assert hyp["ref"] == record["sentence"]
        assert isinstance(hyp["hyp"], str)
        assert hyp["audio_s"] == pytest.approx(record["duration"], abs=0.01)
    assert facts["n"] == 3
    assert facts["audio_s"] == pytest.approx(4.0, abs=0.01)
    assert facts["decode_s"] > 0 and facts["rtf"] > 0
    assert (facts["device"], facts["compute_type"]) == pick_device_and_compute_type("auto")
    assert leftovers(out.parent, {"hyp.jsonl"}) == []


def test_batched_keeps_order_around_a_long_clip(tmp_path, exported):
    clips = [("S1", 1.0, "一"), ("L", 30.5, "二"), ("S2", 1.5, "三"), ("S3", 0.7, "四")]
    manifest = tone_manifest(tmp_path / "long.jsonl", clips)
    texts = {}
    for batch_size in (1, 2):
        out = tmp_path / f"hyp{batch_size}.jsonl"
        transcribe_manifest(
            exported[0],
            manifest,
            out,
            replace(EVAL, beam_size=2, batch_size=batch_size),
            progress=False,
        )
        hyps = read_hyps(out)
        assert [h["id"] for h in hyps] == ["S1", "L", "S2", "S3"]
        assert hyps[1]["audio_s"] == pytest.approx(30.5)
        texts[batch_size] = [h["hyp"] for h in hyps]
    assert texts[1] == texts[2]


def test_batched_and_unbatched_give_the_same_texts(tmp_path, models):
    ct2 = tmp_path / "ct2-int8"
    export_ct2(models["babble"], ct2, quantization="int8")
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * RATE)) / RATE
    clips = {
        "tone": 0.3 * np.sin(2 * np.pi * 220 * t[: int(1.2 * RATE)]),
        "noise": 0.3 * rng.standard_normal(int(0.8 * RATE)),
        "chirp": 0.3 * np.sin(2 * np.pi * (200 + 1000 * t) * t),
        "quiet": 0.001 * rng.standard_normal(RATE),
    }
    records = []
    for name, audio in clips.items():
        sf.write(tmp_path / f"{name}.wav", audio.astype(np.float32), RATE, subtype="PCM_16")
        records.append(make_record(name, str(tmp_path / f"{name}.wav"), name, len(audio) / RATE))
    manifest = tmp_path / "clips.jsonl"
    write_jsonl(manifest, records)
    texts = {}
    for batch_size in (1, 4):
        out = tmp_path / f"hyp{batch_size}.jsonl"
        transcribe_manifest(
            ct2, manifest, out, replace(EVAL, beam_size=2, batch_size=batch_size), progress=False
        )
        hyps = read_hyps(out)
        assert [h["id"] for h in hyps] == list(clips)
        texts[batch_size] = [h["hyp"] for h in hyps]
    assert len(set(texts[1])) > 1, "the babbling model should tell these clips apart"
    assert texts[4] == texts[1]


def test_transcribe_rejects_a_dir_that_is_no_export(tmp_path, manifest):
    with pytest.raises(WhisperforgeError, match=r"model\.bin") as err:
        transcribe_manifest(tmp_path, manifest, tmp_path / "hyp.jsonl", EVAL, progress=False)
    assert str(tmp_path) in str(err.value)
    assert not (tmp_path / "hyp.jsonl").exists()


def test_decoding_where_the_config_wants_a_gpu_stops_at_once_without_one(monkeypatch):
    import ctranslate2

    from whisperforge.decode.transcribe import pick_device_and_compute_type

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    with pytest.raises(WhisperforgeError, match=r"^config train.device: cuda: CTranslate2 sees no"):
        pick_device_and_compute_type("auto", "cuda")
    assert pick_device_and_compute_type("auto", "cpu") == ("cpu", "default")
    assert pick_device_and_compute_type("auto", "auto") == ("cpu", "default")
