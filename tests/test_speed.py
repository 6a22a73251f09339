"""The speed table's measurement: transformers generate vs faster-whisper exports, same clips,
batched and unbatched, each measured in its own process."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import EVAL

from whisperforge.core.errors import WhisperforgeError
from whisperforge.decode.transcribe import pick_device_and_compute_type
from whisperforge.evaluate.speed import measure_speed
from whisperforge.model.export import export_ct2

KEYS = {
    "utterances",
    "audio_s",
    "beam_size",
    "batch_size",
    "device",
    "engines",
    "speedup",
    "hf",
    "ct2",
    "hf_texts_equal_ct2",
}
ROW_KEYS = {
    "engine",
    "variant",
    "compute_type",
    "batch_size",
    "seconds",
    "rtf",
    "speedup",
    "peak_memory_mb",
    "memory",
}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def int8_export(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export-int8") / "ct2-int8"
    export_ct2(tiny, out, quantization="int8")
    return out


def test_measure_speed_rows_per_engine_variant_and_batch(tiny, exported, int8_export, manifest):
    exports = {"float16": exported[0], "int8": int8_export}
    options = replace(EVAL, beam_size=1)
    # Asked for batches of 8: a batch holds at most the 3 clips timed.
    result = measure_speed(tiny, exports, manifest, options, n_utterances=5, batch_size=8)

    assert set(result) == KEYS
    assert (result["utterances"], result["beam_size"], result["batch_size"]) == (3, 1, 3)
    assert result["audio_s"] == pytest.approx(4.0, abs=0.01)
    assert result["device"] == DEVICE
    rows = result["engines"]
    assert all(set(r) == ROW_KEYS for r in rows)
    hf_type = "float16" if DEVICE == "cuda" else "float32"
    assert [(r["engine"], r["variant"], r["batch_size"]) for r in rows] == [
        ("transformers", hf_type, 3),
        ("transformers", hf_type, 1),
        ("faster-whisper", "float16", 3),
        ("faster-whisper", "float16", 1),
        ("faster-whisper", "int8", 3),
        ("faster-whisper", "int8", 1),
    ]
    hf_seconds = {r["batch_size"]: r["seconds"] for r in rows if r["engine"] == "transformers"}
    for r in rows:
        assert r["seconds"] > 0 and r["peak_memory_mb"] > 0
        assert r["rtf"] == pytest.approx(r["seconds"] / result["audio_s"], rel=1e-2)
        assert r["speedup"] == pytest.approx(hf_seconds[r["batch_size"]] / r["seconds"], rel=1e-2)
        assert r["memory"] == ("cuda" if DEVICE == "cuda" else "rss")
    ct2_float16, ct2_int8 = rows[2], rows[4]
    assert rows[0]["compute_type"] == hf_type
    if DEVICE == "cpu":
        # a float16 export runs in float32 on a CPU, an int8 one in int8
        assert ct2_float16["compute_type"] == "float32"
        assert ct2_int8["compute_type"].startswith("int8")
        # each figure is its own process's: transformers' (torch loaded) above CTranslate2's
        assert min(r["peak_memory_mb"] for r in rows[:2]) > max(
            r["peak_memory_mb"] for r in rows[2:]
        )
    # the headline: the primary export batched vs transformers batched
    assert result["speedup"] == pytest.approx(rows[0]["seconds"] / rows[2]["seconds"], rel=1e-2)
    assert result["hf"] == {
        "seconds": rows[0]["seconds"],
        "rtf": rows[0]["rtf"],
        "device": DEVICE,
        "dtype": hf_type,
    }
    assert result["ct2"] == {
        "seconds": ct2_float16["seconds"],
        "rtf": ct2_float16["rtf"],
        "device": pick_device_and_compute_type("auto")[0],
        "compute_type": ct2_float16["compute_type"],
    }
    assert 0 <= result["hf_texts_equal_ct2"] <= 3
    json.dumps(result)  # JSON-able for write_json


def test_one_clip_is_timed_once_per_engine_unbatched(tiny, exported, manifest):
    options = replace(EVAL, beam_size=1)
    one = measure_speed(
        tiny, {"float16": exported[0]}, manifest, options, n_utterances=1, batch_size=8
    )
    assert (one["utterances"], one["batch_size"]) == (1, 1)
    assert [(r["engine"], r["batch_size"]) for r in one["engines"]] == [
        ("transformers", 1),
        ("faster-whisper", 1),
    ]


def test_fixed_work_decodes_equal_tokens_unbatched_only_at_batch_size_1(
    tiny, int8_export, manifest
):
    # End-of-text banned: each clip decodes exactly 3 tokens in both engines, or measure_speed
    # raises (CTranslate2's max_length halving is compensated for; the batched path is the
    # benchmark's, benchmarks/bench_inference.py). Batch size 1: one row per engine.
    options = replace(EVAL, beam_size=2)
    result = measure_speed(
        tiny, {"int8": int8_export}, manifest, options, n_utterances=3, batch_size=1, fixed_tokens=3
    )
    rows = result["engines"]
    assert [(r["engine"], r["batch_size"]) for r in rows] == [
        ("transformers", 1),
        ("faster-whisper", 1),
    ]
    assert result["speedup"] == pytest.approx(rows[0]["seconds"] / rows[1]["seconds"], rel=1e-2)
    assert result["hf"]["seconds"] == rows[0]["seconds"]


@pytest.mark.parametrize("bad", ["missing", "empty"])
def test_bad_export_dir_is_one_line_before_any_timing(tiny, exported, manifest, tmp_path, bad):
    bad_dir = tmp_path / "ct2-int8"
    if bad == "empty":
        bad_dir.mkdir()
    with pytest.raises(WhisperforgeError, match="not a CTranslate2 Whisper export") as e:
        measure_speed(
            tiny,
            {"float16": exported[0], "int8": bad_dir},
            manifest,
            EVAL,
            n_utterances=1,
            batch_size=2,
        )
    assert str(bad_dir) in str(e.value) and "\n" not in str(e.value)


def test_no_export_or_no_hf_model_is_one_line(tiny, exported, manifest, tmp_path):
    with pytest.raises(WhisperforgeError, match=r"export\.quantizations"):
        measure_speed(tiny, {}, manifest, EVAL, n_utterances=1, batch_size=2)
    with pytest.raises(WhisperforgeError, match="not a transformers model directory"):
        measure_speed(
            tmp_path, {"float16": exported[0]}, manifest, EVAL, n_utterances=1, batch_size=2
        )


def test_error_in_the_timing_process_comes_back_as_one_line(tiny, exported, manifest, tmp_path):
    broken = tmp_path / "ct2-float16"
    shutil.copytree(exported[0], broken)
    (broken / "model.bin").write_bytes(b"not a CTranslate2 model")
    with pytest.raises(WhisperforgeError, match="faster-whisper cannot load it") as e:
        measure_speed(tiny, {"float16": broken}, manifest, EVAL, n_utterances=1, batch_size=1)
    assert str(broken) in str(e.value) and "\n" not in str(e.value)
