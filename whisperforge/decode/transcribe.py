"""Decode a manifest with faster-whisper on a CTranslate2 export: one hypothesis line per utterance.

Decoding settings are fixed for evaluation: one temperature (0.0, no fallback), no previous-text
conditioning, no timestamps, no silence skipping. That makes every decode deterministic and makes
the two decoding paths below produce the same text:

* `batch_size == 1`: `WhisperModel.transcribe`, one utterance at a time (VAD if asked).
* `batch_size > 1` (and no VAD): `BatchedInferencePipeline` across *utterances*. The pipeline only
  batches the chunks of the one audio it is given, and without VAD a clip shorter than 30 s is a
  single chunk (a clip of 30 s or more raises "No clip timestamps found"), so calling it once per
  utterance never batches anything. We therefore hand it `batch_size` utterances concatenated,
  with `clip_timestamps` marking each one: every clip becomes one chunk whose log-mel is computed
  from that clip alone, exactly as in the unbatched path, and without timestamps each chunk comes
  back as exactly one segment, in order. Utterances of 30 s or more (which the pipeline would cut
  at 30 s) are decoded unbatched.
* `vad_filter=True` with `batch_size > 1`: the stock pipeline per utterance (VAD chunks batched).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from whisperforge.core.audio import SAMPLE_RATE, clip_bounds
from whisperforge.core.errors import WhisperforgeError, one_line
from whisperforge.core.files import atomic_path
from whisperforge.core.manifest import read_manifest, utterance_id
from whisperforge.core.options import DecodeOptions

log = logging.getLogger(__name__)

CHUNK_S = 30.0  # Whisper's window; longer clips are never batched
MIN_BATCH_S = 0.01  # nor near-empty ones, which could not be told apart by start time
CT2_FILES = ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json")

# Shared by every faster-whisper decode in the workflow (export probe, evaluation, speed).
DECODE_OPTIONS: dict[str, Any] = {
    "temperature": 0.0,
    "condition_on_previous_text": False,
    "without_timestamps": True,
    "no_speech_threshold": None,
}


def pick_device_and_compute_type(compute_type: str, device: str = "auto") -> tuple[str, str]:
    """("cuda", "float16") with a GPU and ("cpu", "default") without, for "auto"; else pass through.

    "default" keeps the export's own type where the device supports it (a float16 export runs in
    float32 on a CPU, where "float16" would raise). `device` is `train.device`: "cpu" keeps off
    the GPUs, "cuda" stops at once when CTranslate2 sees none (rather than decode for days).
    """
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    if device == "cuda" and gpus == 0:
        raise WhisperforgeError(
            "config train.device: cuda: CTranslate2 sees no CUDA device; set train.device: cpu "
            "to decode on the CPU anyway (python -m whisperforge doctor tells why)"
        )
    if device == "auto":
        device = "cuda" if gpus > 0 else "cpu"
    if compute_type == "auto":
        return device, "float16" if device == "cuda" else "default"
    return device, compute_type


def check_ct2_dir(ct2_dir: str | Path) -> Path:
    """The export directory, or a WhisperforgeError naming the file it lacks."""
    ct2_dir = Path(ct2_dir)
    missing = [name for name in CT2_FILES if not (ct2_dir / name).is_file()]
    if missing:
        raise WhisperforgeError(
            f"{ct2_dir}: not a CTranslate2 Whisper export (missing {', '.join(missing)})"
        )
    return ct2_dir


def load_model(
    ct2_dir: str | Path, compute_type: str = "auto", threads: int = 2, *, device: str = "auto"
):
    """Load a checked export with faster-whisper; returns (model, device, compute_type used)."""
    from faster_whisper import WhisperModel

    ct2_dir = check_ct2_dir(ct2_dir)
    device, ctype = pick_device_and_compute_type(compute_type, device)
    try:
        model = WhisperModel(
            str(ct2_dir),
            device=device,
            compute_type=ctype,
            cpu_threads=threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as e:
        raise WhisperforgeError(
            f"{ct2_dir}: faster-whisper cannot load it on {device} with compute type {ctype} "
            f"({one_line(e)})"
        ) from e
    return model, device, ctype


def load_audio(audio: str | Path | dict, manifest: str | Path | None = None) -> np.ndarray:
    """16 kHz mono float32 samples of a file, or of a manifest record's `audio` (its stretch
    `start_time`..`end_time` when given); other rates or channel counts go through
    faster-whisper."""
    start_s, end_s = clip_bounds(audio) if isinstance(audio, dict) else (None, None)
    path = Path(audio["path"] if isinstance(audio, dict) else audio)
    where = f"{manifest}: " if manifest else ""
    if not path.is_file():
        raise WhisperforgeError(f"{where}audio file {path} not found")
    try:
        info = sf.info(str(path))
        if info.samplerate == SAMPLE_RATE and info.channels == 1:
            first = round((start_s or 0.0) * SAMPLE_RATE)
            last = info.frames if end_s is None else round(end_s * SAMPLE_RATE)
            samples, _ = sf.read(str(path), start=first, stop=last, dtype="float32")
        else:
            from faster_whisper import decode_audio

            samples = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
            first = round((start_s or 0.0) * SAMPLE_RATE)
            samples = samples[first : None if end_s is None else round(end_s * SAMPLE_RATE)]
    except (RuntimeError, ValueError, OSError) as e:  # sf.LibsndfileError is RuntimeError
        raise WhisperforgeError(f"{where}cannot read audio {path} ({one_line(e)})") from e
    if samples.size == 0:
        raise WhisperforgeError(f"{where}{path}: no audio between {start_s} and {end_s} s")
    return samples


def decode_one(
    model, audio: np.ndarray, *, language: str, task: str, beam_size: int, vad_filter: bool = False
) -> str:
    """Transcribe one utterance (unbatched) into one string."""
    segments, _ = model.transcribe(
        audio,
        language=language,
        task=task,
        beam_size=beam_size,
        vad_filter=vad_filter,
        **DECODE_OPTIONS,
    )
    return "".join(segment.text for segment in segments).strip()


class BatchMismatch(Exception):
    """Batched segments could not be matched one-to-one with the batch's utterances."""


def _clip_bound(sample: int) -> float:
    """A time in seconds that faster-whisper's `int(t * 16000)` maps back to exactly `sample`."""
    return (sample + 0.5) / SAMPLE_RATE


def batchable(audio: np.ndarray) -> bool:
    """Whether `decode_batch` takes the clip: 0.01 s to under 30 s (longer ones decode alone)."""
    return MIN_BATCH_S * SAMPLE_RATE <= len(audio) < CHUNK_S * SAMPLE_RATE


def decode_batch(
    pipeline, audios: list[np.ndarray], *, language: str, task: str, beam_size: int
) -> list[str]:
    """Transcribe short utterances (< 30 s each) in one batched call; texts in input order.

    Each segment is matched to its clip by start time (the clip's offset in the concatenation),
    so a change in how the pipeline orders or splits chunks fails loudly instead of shifting
    hypotheses onto the wrong utterances.
    """
    bounds, offsets, start = [], [], 0
    for audio in audios:
        bounds.append({"start": _clip_bound(start), "end": _clip_bound(start + len(audio))})
        offsets.append(start)
        start += len(audio)
    segments, _ = pipeline.transcribe(
        np.concatenate(audios),
        language=language,
        task=task,
        beam_size=beam_size,
        batch_size=len(audios),
        clip_timestamps=bounds,
        vad_filter=False,
        **DECODE_OPTIONS,
    )
    texts: list[str | None] = [None] * len(audios)
    for segment in segments:  # start is rounded to 1 ms; clips are farther apart than that
        i = int(np.argmin([abs(segment.start * SAMPLE_RATE - o) for o in offsets]))
        if (
            texts[i] is not None
            or abs(segment.start * SAMPLE_RATE - offsets[i]) > SAMPLE_RATE / 500
        ):
            raise BatchMismatch(f"batched decoding returned a segment at {segment.start:.3f} s")
        texts[i] = segment.text.strip()
    if None in texts:
        raise BatchMismatch(f"batched decoding returned no segment for clip {texts.index(None)}")
    return texts


def _decode_vad(pipeline, audio, *, language, task, beam_size, batch_size) -> str:
    segments, _ = pipeline.transcribe(
        audio,
        language=language,
        task=task,
        beam_size=beam_size,
        batch_size=batch_size,
        vad_filter=True,
        **DECODE_OPTIONS,
    )
    return "".join(segment.text for segment in segments).strip()


def transcribe_manifest(
    ct2_dir: str | Path,
    manifest: str | Path,
    out_jsonl: str | Path,
    options: DecodeOptions,
    *,
    threads: int = 2,
    progress: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Write `{"id", "ref", "hyp", "audio_s"}` per manifest line, in manifest order.

    No timings in the hypotheses, so that two builds of the same inputs give the same bytes: the
    decoding time goes to the log and the returned facts {n, audio_s, decode_s, rtf, device,
    compute_type}; decode_s excludes audio loading.
    """
    from faster_whisper import BatchedInferencePipeline

    batch_size, vad_filter = options.batch_size, options.vad_filter
    records = read_manifest(manifest)
    if not records:
        raise WhisperforgeError(f"{manifest}: manifest has no utterances")
    model, device, ctype = load_model(ct2_dir, options.compute_type, threads, device=device)
    pipeline = BatchedInferencePipeline(model) if batch_size > 1 else None
    log.info(
        "decoding %d utterances of %s with %s on %s (%s), beam %d, batch %d, vad %s",
        len(records),
        manifest,
        ct2_dir,
        device,
        ctype,
        options.beam_size,
        batch_size,
        vad_filter,
    )

    audio_s = decode_s = 0.0
    bar = tqdm(total=len(records), unit="utt", disable=not progress, desc="transcribe")
    with atomic_path(out_jsonl) as tmp, tmp.open("w", encoding="utf-8") as out:
        for group, seconds in decoded_groups(records, manifest, model, pipeline, options):
            for record, clip_s, text in group:
                line = {
                    "id": utterance_id(record),
                    "ref": record["sentence"],
                    "hyp": text,
                    "audio_s": round(clip_s, 3),
                }
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                audio_s += clip_s
            decode_s += seconds
            bar.update(len(group))
    bar.close()

    facts = {
        "n": len(records),
        "audio_s": round(audio_s, 3),
        "decode_s": round(decode_s, 3),
        "rtf": round(decode_s / audio_s, 4) if audio_s else 0.0,
        "device": device,
        "compute_type": ctype,
    }
    log.info("wrote %s: %s", out_jsonl, facts)
    return facts


Decoded = tuple[dict[str, Any], float, str]  # a manifest record, its seconds of audio, the text


def decoded_groups(
    records: list[dict[str, Any]],
    manifest: str | Path,
    model: Any,
    pipeline: Any,
    options: DecodeOptions,
) -> Iterator[tuple[list[Decoded], float]]:
    """The records decoded in manifest order, a group at a time (a batch of short clips, or one
    utterance), each with the seconds its decoding took (audio loading excluded)."""
    opts = {"language": options.language, "task": options.task, "beam_size": options.beam_size}
    pending: list[tuple[dict[str, Any], np.ndarray]] = []  # short clips waiting for a batch

    def batch() -> tuple[list[Decoded], float]:
        t0 = time.perf_counter()
        audios = [audio for _, audio in pending]
        try:
            texts = decode_batch(pipeline, audios, **opts)
        except BatchMismatch as e:
            # A model that emits stray timestamp tokens can move segment starts; the batch is
            # then decoded clip by clip (same text, only slower).
            log.warning("%s: decoding this batch one utterance at a time", e)
            texts = [decode_one(model, audio, **opts) for audio in audios]
        seconds = time.perf_counter() - t0
        group = [(r, len(a) / SAMPLE_RATE, t) for (r, a), t in zip(pending, texts, strict=True)]
        pending.clear()
        return group, seconds

    for record in records:
        audio = load_audio(record["audio"], manifest)
        if pipeline is not None and not options.vad_filter and batchable(audio):
            pending.append((record, audio))
            if len(pending) == options.batch_size:
                yield batch()
            continue
        if pending:
            yield batch()  # keep manifest order
        t0 = time.perf_counter()
        if pipeline is not None and options.vad_filter:
            text = _decode_vad(pipeline, audio, batch_size=options.batch_size, **opts)
        else:
            text = decode_one(model, audio, vad_filter=options.vad_filter, **opts)
        yield [(record, len(audio) / SAMPLE_RATE, text)], time.perf_counter() - t0
    if pending:
        yield batch()
