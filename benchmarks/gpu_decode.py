"""The GPU day's CTranslate2 measurement: the float16 export decoded per compute type, batched and
unbatched, every clip forced to exactly `new_tokens` tokens; RTF and device memory per row.

It runs in a child process (`run_ct2` starts this file with `--ct2-child SPEC OUT`), so that a
crash loading CTranslate2's CUDA libraries ends only the child.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_common import OK, SAMPLE_RATE, SKIPPED, one_line

Decode = Callable[[list[Any], int], list[int]]  # (clips, max_length) -> tokens per clip


@dataclass(frozen=True)
class Clips:
    """What every compute type decodes: the audio, its features, the forced prompt."""

    audios: list[Any]
    audio_s: float
    extractor: Any
    prompt: list[int]
    suppress: list[int]


def read_wav(path: str) -> Any:
    import numpy as np

    with wave.open(path, "rb") as f:
        frames = f.readframes(f.getnframes())
    return np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768.0


def load_clips(spec: dict[str, Any], export: Path) -> Clips:
    """The manifest's first clips, and the prompt (zh, transcribe, no timestamps) with
    end-of-text and every special suppressed: fixed work per clip."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor.from_pretrained(spec["hf"])
    records = [json.loads(x) for x in Path(spec["manifest"]).read_text().splitlines()]
    audios = [read_wav(r["audio"]["path"]) for r in records[: spec["utterances"]]]
    audio_s = sum(a.size for a in audios) / SAMPLE_RATE
    tokenizer = json.loads((export / "tokenizer.json").read_text(encoding="utf-8"))
    ids = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    prompt = [ids[t] for t in ("<|startoftranscript|>", "<|zh|>", "<|transcribe|>")]
    prompt.append(ids["<|notimestamps|>"])
    eot = ids["<|endoftext|>"]
    vocab = max(ids.values()) + 1
    suppress = list(range(eot, vocab))  # end-of-text and every special: fixed work
    return Clips(audios, audio_s, extractor, prompt, suppress)


def load_decoder(
    spec: dict[str, Any], export: Path, compute: str, clips: Clips
) -> tuple[Decode, int]:
    """The export loaded at `compute`; a decode function holding it, and the max_length that
    gives exactly `new_tokens` tokens (found by an untimed warm-up)."""
    import ctranslate2
    import numpy as np

    model = ctranslate2.models.Whisper(
        str(export),
        device=spec["device"],
        compute_type=compute,
        inter_threads=1,
        intra_threads=spec["threads"],
    )

    def features(group: list[Any]) -> Any:
        mel = clips.extractor(group, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))

    def decode(group: list[Any], max_length: int, model: Any = model) -> list[int]:
        results = model.generate(
            features(group),
            [clips.prompt] * len(group),
            beam_size=spec["beam"],
            max_length=max_length,
            suppress_tokens=clips.suppress,
            suppress_blank=False,
        )
        return [len(r.sequences_ids[0]) for r in results]

    # CTranslate2 4.x ends a Whisper decode at half of max_length (OpenNMT/
    # CTranslate2#1856; bench_inference.py asks for twice as much); a version without
    # the halving gives n at n + prompt. The warm-up (untimed) finds which.
    n = spec["new_tokens"]
    max_length = next(
        (m for m in (2 * n, n + len(clips.prompt)) if decode(clips.audios[:1], m) == [n]), 2 * n
    )
    return decode, max_length


def time_batches(
    spec: dict[str, Any],
    compute: str,
    decode: Decode,
    max_length: int,
    clips: Clips,
    free_before: int | None,
) -> list[dict[str, Any]]:
    """One row per batch size: seconds, RTF, tokens per clip, device memory since `free_before`."""
    import torch

    n, audios, rows = spec["new_tokens"], clips.audios, []
    for batch in spec["batch_sizes"]:
        t1 = time.perf_counter()
        tokens: list[int] = []
        try:
            for i in range(0, len(audios), batch):
                tokens += decode(audios[i : i + batch], max_length)
        except Exception as e:
            rows.append(
                {"compute_type": compute, "batch": batch, "status": "error", "note": one_line(e)}
            )
            continue
        seconds = time.perf_counter() - t1
        exact = tokens == [n] * len(audios)
        rows.append(
            {
                "compute_type": compute,
                "batch": batch,
                "status": OK,
                "note": "" if exact else f"tokens {sorted(set(tokens))}",
                "utterances": len(audios),
                "audio_s": round(clips.audio_s, 2),
                "seconds": round(seconds, 3),
                "rtf": round(seconds / clips.audio_s, 4),
                "tokens_per_utterance": n if exact else None,
                "peak_mib": (
                    round((free_before - torch.cuda.mem_get_info()[0]) / 2**20)
                    if free_before is not None
                    else None
                ),
            }
        )
    return rows


def ct2_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Export, then time each compute type batched and unbatched; runs in a child process."""
    try:
        import ctranslate2
    except Exception as e:
        return {"status": "unavailable", "note": f"ctranslate2 cannot be imported ({e})"}
    device = spec["device"]
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        return {
            "status": "unavailable",
            "note": f"ctranslate2 {ctranslate2.__version__} sees no CUDA device (its CUDA "
            "runtime or driver does not load here)",
        }
    import torch

    from whisperforge.model.export import export_ct2

    t0 = time.perf_counter()
    export = Path(spec["work"]) / "ct2-float16"
    try:
        export_ct2(spec["hf"], export, quantization="float16")
    except Exception as e:
        return {"status": "error", "note": f"float16 export failed: {one_line(e)}"}
    export_s = round(time.perf_counter() - t0, 1)
    clips = load_clips(spec, export)
    rows: list[dict[str, Any]] = []
    for compute in spec["compute_types"]:
        # `decode` holds its model until the next compute type's loads, as it always has.
        free_before = torch.cuda.mem_get_info()[0] if device == "cuda" else None
        try:
            decode, max_length = load_decoder(spec, export, compute, clips)
        except Exception as e:
            rows.append({"compute_type": compute, "status": "error", "note": one_line(e)})
            continue
        rows += time_batches(spec, compute, decode, max_length, clips, free_before)
        gc.collect()
    return {
        "status": OK,
        "note": "",
        "ctranslate2": ctranslate2.__version__,
        "export_s": export_s,
        "beam": spec["beam"],
        "rows": rows,
    }


def run_ct2(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """`ct2_child` in a fresh interpreter: a crash loading CUDA libraries ends only the child."""
    if importlib.util.find_spec("ctranslate2") is None:
        return {
            "status": "unavailable",
            "note": "ctranslate2 is not installed (benchmarks/gpu_day.py --with-ctranslate2 "
            "carries it where the 64 MiB allow)",
        }
    spec_path = Path(spec["work"]) / "ct2-spec.json"
    out_path = Path(spec["work"]) / "ct2-result.json"
    spec_path.write_text(json.dumps(spec))
    child = str(Path(__file__).resolve())
    cmd = [sys.executable, child, "--ct2-child", str(spec_path), str(out_path)]
    try:
        proc = subprocess.run(cmd, timeout=max(1.0, timeout_s), check=False)
    except subprocess.TimeoutExpired:
        return {"status": SKIPPED, "note": f"stopped by the time budget after {timeout_s:.0f} s"}
    if not out_path.is_file():
        return {
            "status": "error",
            "note": f"the decoding process exited with code {proc.returncode} (log above)",
        }
    return json.loads(out_path.read_text())


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--ct2-child":
        sys.exit("usage: gpu_decode.py --ct2-child SPEC.json OUT.json (run_ct2 starts it)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = ct2_child(json.loads(Path(sys.argv[2]).read_text()))
    Path(sys.argv[3]).write_text(json.dumps(out))
    sys.exit(0)
