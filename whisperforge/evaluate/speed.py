"""Time transformers `generate` against faster-whisper on the CTranslate2 exports, like with like.

Every engine decodes the same first utterances of a manifest (short-form: clips under 30 s; longer
ones are skipped, as neither engine batches them) with the same beam, language and task, batched
at `batch_size` and unbatched:

* transformers: the feature extractor on the batch (every clip padded to Whisper's 30 s window,
  so a batch is one (B, mels, 3000) tensor) and one `generate` call per batch;
* faster-whisper, once per export variant: the evaluation's own paths, `transcribe.decode_batch`
  (clips concatenated, `clip_timestamps` marking each) batched and `transcribe.decode_one`
  unbatched.

Each measurement runs in a fresh child process (a new interpreter, so no engine's memory or
threads leak into another's figures) and times the whole manifest slice after one untimed
warm-up decode of the first clip through the same path. Peak memory is the child's own: on a CPU
its peak resident set (Linux VmHWM, as `_peak_rss_mb` says why: weights, activations and the
Python runtime with the imported libraries); on CUDA `torch.cuda.max_memory_allocated` for
transformers, and for CTranslate2 (whose allocator torch cannot see; pynvml is not a dependency)
the device memory in use after the run minus before loading, by `torch.cuda.mem_get_info`
(CTranslate2's caching allocator keeps its blocks, so that is its peak; another process on the
same GPU would count too).

Texts are compared too: the two front ends pad the log-mel of clips shorter than 30 s differently
(transformers pads the audio, faster-whisper the features), so a few hypotheses may differ even
for the same weights.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from whisperforge.core.audio import SAMPLE_RATE
from whisperforge.core.errors import WhisperforgeError, one_line
from whisperforge.core.files import write_json
from whisperforge.core.manifest import read_manifest
from whisperforge.decode.transcribe import (
    BatchMismatch,
    DecodeOptions,
    batchable,
    check_ct2_dir,
    decode_batch,
    decode_one,
    load_audio,
    load_model,
    pick_device_and_compute_type,
)

log = logging.getLogger(__name__)

HF = "transformers"
CT2 = "faster-whisper"
# The decoder prompt of both engines without timestamps or a previous text:
# <|startoftranscript|><|lang|><|transcribe|><|notimestamps|>.
PROMPT_TOKENS = 4
PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # on the child's PYTHONPATH
CHILD_CODE = (
    "import sys; from whisperforge.evaluate.speed import run_child; run_child(*sys.argv[1:])"
)

# A decoder maps a group of clips to (texts, generated text tokens per clip).
Decoder = Callable[[list[Any]], tuple[list[str], list[int]]]


def _special_ids(vocab_size: int, eot: int) -> list[int]:
    """<|endoftext|> and every id after it (specials, timestamps): what fixed-work decodes ban."""
    return list(range(eot, vocab_size))


def _label(spec: dict[str, Any]) -> str:
    variant = f" {spec['variant']}" if spec["variant"] else ""
    return f"{spec['engine']}{variant} at batch size {spec['batch_size']}"


# --- the child: one engine, one variant, one batch size -----------------------------------------


def _hf_decoder(spec: dict[str, Any]) -> tuple[Decoder, str, Callable[[], float]]:
    """transformers `generate` on a padded batch; (decoder, dtype name, peak CUDA MiB)."""
    import torch
    from transformers import (
        AutoTokenizer,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(spec["threads"])
    device, hf_dir = spec["device"], spec["model"]
    dtype = torch.float16 if device == "cuda" else torch.float32
    try:
        model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=dtype)
        extractor = WhisperFeatureExtractor.from_pretrained(hf_dir)
        tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    except Exception as e:  # OSError, ValueError, SafetensorError, ...: anything from a bad dir
        raise WhisperforgeError(f"{hf_dir}: transformers cannot load it ({one_line(e)})") from e
    model.to(device).eval()
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    limits: dict[str, Any] = {}
    if spec["fixed_tokens"]:
        hf_logging.set_verbosity_error()  # generate() warns about every explicit limit
        n = spec["fixed_tokens"]
        limits = {
            "max_new_tokens": n,
            "min_new_tokens": n,
            "suppress_tokens": _special_ids(len(tokenizer), eot),
        }

    def decode(audios: list[Any]) -> tuple[list[str], list[int]]:
        features = extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(
                features.input_features.to(device, dtype),
                num_beams=spec["beam_size"],
                language=spec["language"],
                task=spec["task"],
                **limits,
            )
        rows = ids.tolist()  # a device-to-host copy: the GPU is synchronised here
        texts = [t.strip() for t in tokenizer.batch_decode(rows, skip_special_tokens=True)]
        return texts, [sum(1 for t in row if t < eot) for row in rows]  # prompt, padding >= eot

    def peak_mb() -> float:
        return torch.cuda.max_memory_allocated() / 2**20

    return decode, str(dtype).removeprefix("torch."), peak_mb


class _Limited:
    """A WhisperModel or BatchedInferencePipeline whose `transcribe` adds `extra` decoding options
    (the fixed-work limits) and records each segment's token count; `decode_one` and
    `decode_batch` take it as they take the real object, so the timed paths are the evaluation's."""

    def __init__(self, inner: Any, extra: dict[str, Any], tokens: list[int]) -> None:
        self.inner, self.extra, self.tokens = inner, extra, tokens

    def transcribe(self, audio: Any, **kwargs: Any) -> tuple[list[Any], Any]:
        segments, info = self.inner.transcribe(audio, **{**kwargs, **self.extra})
        segments = list(segments)
        self.tokens.extend(len(s.tokens) for s in segments)
        return segments, info


def _ct2_decoder(spec: dict[str, Any]) -> tuple[Decoder, str]:
    """faster-whisper through the evaluation's decode paths; (decoder, compute type in use)."""
    from faster_whisper import BatchedInferencePipeline

    model, _, _ = load_model(
        spec["model"], spec["compute_type"], spec["threads"], device=spec["device"]
    )
    extra: dict[str, Any] = {}
    if spec["fixed_tokens"]:
        tokenizer = model.hf_tokenizer
        eot = tokenizer.token_to_id("<|endoftext|>")
        # CTranslate2 4.x ends a Whisper decode at half of prompt + max_new_tokens
        # (OpenNMT/CTranslate2#1856); the token count check below proves the work equal.
        extra = {
            "max_new_tokens": 2 * spec["fixed_tokens"] - PROMPT_TOKENS,
            "suppress_tokens": _special_ids(tokenizer.get_vocab_size(), eot),
        }
    tokens: list[int] = []
    single = _Limited(model, extra, tokens)
    batched = _Limited(BatchedInferencePipeline(model), extra, tokens) if spec["batched"] else None
    opts = {"language": spec["language"], "task": spec["task"], "beam_size": spec["beam_size"]}

    def decode(audios: list[Any]) -> tuple[list[str], list[int]]:
        start = len(tokens)
        if batched is None:
            texts = [decode_one(single, audio, **opts) for audio in audios]
        else:
            try:
                texts = decode_batch(batched, audios, **opts)
            except BatchMismatch as e:  # as transcribe_manifest does: same text, only slower
                log.warning("%s: decoding this batch one utterance at a time", e)
                del tokens[start:]
                texts = [decode_one(single, audio, **opts) for audio in audios]
        return texts, tokens[start:]

    return decode, model.model.compute_type


def _peak_rss_mb() -> float:
    """This process's peak resident set, MiB. Linux: VmHWM, the peak of this process's own memory
    map; `getrusage` ru_maxrss is not used there because it carries the parent's peak across
    fork and exec, so every child would report at least the parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    if sys.platform != "win32":
        import resource  # POSIX only

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # a fresh interpreter's own
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes there, KiB here
    import psutil  # Windows: no /proc, no `resource`; the peak working set

    return psutil.Process().memory_info().peak_wset / 2**20


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then time one engine over the spec's clips; runs in the child process."""
    label = _label(spec)
    records = read_manifest(spec["manifest"])
    audios = [load_audio(records[i]["audio"], spec["manifest"]) for i in spec["indices"]]
    cuda = spec["device"] == "cuda"
    if spec["engine"] == HF:
        decode, compute_type, hf_peak = _hf_decoder(spec)
        variant = compute_type
    else:
        free_before = 0
        if cuda:
            import torch

            free_before = torch.cuda.mem_get_info()[0]  # after torch's own CUDA context
        decode, compute_type = _ct2_decoder(spec)
        variant = spec["variant"]
    step = spec["batch_size"]
    decode(audios[:1])  # warm-up, not timed
    texts: list[str] = []
    tokens: list[int] = []
    t0 = time.perf_counter()
    for i in range(0, len(audios), step):
        group_texts, group_tokens = decode(audios[i : i + step])
        texts += group_texts
        tokens += group_tokens
    seconds = time.perf_counter() - t0
    fixed = spec["fixed_tokens"]
    if fixed and tokens != [fixed] * len(audios):
        raise WhisperforgeError(
            f"{label}: decoded {sorted(set(tokens))} tokens per utterance, not {fixed} each "
            "(unequal work; is this CTranslate2 without its max_length halving?)"
        )
    if not cuda:
        peak_mb, memory = _peak_rss_mb(), "rss"
    elif spec["engine"] == HF:
        peak_mb, memory = hf_peak(), "cuda"
    else:
        import torch

        peak_mb, memory = (free_before - torch.cuda.mem_get_info()[0]) / 2**20, "cuda"
    return {
        "variant": variant,
        "compute_type": compute_type,
        "seconds": seconds,
        "peak_memory_mb": round(peak_mb, 1),
        "memory": memory,
        "texts": texts,
        "tokens": tokens,
    }


def run_child(spec_path: str, out_path: str) -> None:
    """The child process's entry: measure the spec, write the result (or a one-line error)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per decode otherwise
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    try:
        result = _measure(spec)
    except WhisperforgeError as e:
        result = {"error": str(e)}
    write_json(out_path, result)


def _in_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `_measure(spec)` in a new interpreter (not multiprocessing: under Snakemake's `script:`
    a spawned child would re-run the step script as its __main__)."""
    label = _label(spec)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p
    )
    with tempfile.TemporaryDirectory(prefix="whisperforge-speed-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        cmd = [sys.executable, "-c", CHILD_CODE, str(spec_path), str(out_path)]
        proc = subprocess.run(cmd, env=env, check=False)  # its stderr goes to the step's log
        if not out_path.is_file():
            raise WhisperforgeError(
                f"timing {label} ({spec['model']}) failed: its process exited with code "
                f"{proc.returncode} (traceback in the log)"
            )
        result = json.loads(out_path.read_text(encoding="utf-8"))
    if "error" in result:
        raise WhisperforgeError(result["error"])
    return result


# --- the parent: which clips, which rows, the table ---------------------------------------------


def _pick_clips(manifest: Path, n_utterances: int) -> tuple[list[int], float]:
    """Indices of the first `n_utterances` short-form clips of the manifest, and their seconds."""
    indices, samples, skipped = [], 0, 0
    for i, record in enumerate(read_manifest(manifest)):
        if len(indices) == n_utterances:
            break
        audio = load_audio(record["audio"], manifest)
        if batchable(audio):
            indices.append(i)
            samples += len(audio)
        else:
            skipped += 1
    if not indices:
        raise WhisperforgeError(f"{manifest}: manifest has no utterances under 30 s to time")
    if skipped:
        log.info("%s: skipped %d clips of 30 s or more (or empty)", manifest, skipped)
    return indices, samples / SAMPLE_RATE


def _checked_models(
    hf_dir: Path,
    ct2_dirs: Mapping[str, str | Path],
    options: DecodeOptions,
    fixed_tokens: int | None,
) -> dict[str, Path]:
    """The exports to time (checked), after the transformers folder and the fixed-work request."""
    if not ct2_dirs:
        raise WhisperforgeError("export.quantizations: no CTranslate2 export to time")
    exports = {q: check_ct2_dir(d) for q, d in ct2_dirs.items()}
    if not (hf_dir / "config.json").is_file():
        raise WhisperforgeError(f"{hf_dir}: not a transformers model directory (no config.json)")
    if fixed_tokens is not None and not (options.language and 0 < fixed_tokens <= 220):
        raise WhisperforgeError(
            "fixed-work timing needs a language and 1-220 tokens "
            f"(got {options.language!r}, {fixed_tokens})"
        )
    return exports


def _row(
    measured: Mapping[tuple[str, str | None, int], dict[str, Any]],
    engine: str,
    variant: str | None,
    size: int,
    audio_s: float,
) -> dict[str, Any]:
    """One engine's row, its speedup against transformers at the same batch size."""
    r, hf = measured[engine, variant, size], measured[HF, None, size]
    return {
        "engine": engine,
        "variant": r["variant"],
        "compute_type": r["compute_type"],
        "batch_size": size,
        "seconds": round(r["seconds"], 4),
        "rtf": round(r["seconds"] / audio_s, 4),
        "speedup": round(hf["seconds"] / r["seconds"], 3),
        "peak_memory_mb": r["peak_memory_mb"],
        "memory": r["memory"],
    }


def measure_speed(
    hf_dir: str | Path,
    ct2_dirs: Mapping[str, str | Path],
    manifest: str | Path,
    options: DecodeOptions,
    *,
    n_utterances: int,
    batch_size: int,
    threads: int = 2,
    device: str = "auto",
    fixed_tokens: int | None = None,
) -> dict[str, Any]:
    """Time transformers and every export (quantization -> dir, primary first) on the same clips.

    Rows: each engine batched at `batch_size` (at most the clips timed) and unbatched (one row
    when that is 1), with seconds, RTF, speedup against transformers at the same batch size, peak
    memory, compute type. `fixed_tokens` (benchmarks on random weights): end-of-text and every
    special token are banned and each clip decodes exactly that many tokens in both engines,
    checked.
    """
    hf_dir, manifest = Path(hf_dir), Path(manifest)
    exports = _checked_models(hf_dir, ct2_dirs, options, fixed_tokens)
    # Both engines on one device; train.device: cuda without one stops here.
    run_device, _ = pick_device_and_compute_type(options.compute_type, device)
    indices, audio_s = _pick_clips(manifest, n_utterances)
    # A batch holds at most the clips timed: batched over one clip is the unbatched row again.
    batch_size = min(batch_size, len(indices))
    base = {
        "manifest": str(manifest),
        "indices": indices,
        "language": options.language,
        "task": options.task,
        "beam_size": options.beam_size,
        "threads": threads,
        "device": run_device,
        "compute_type": options.compute_type,
        "fixed_tokens": fixed_tokens,
    }
    sizes = [batch_size, 1] if batch_size > 1 else [1]
    plan = [(HF, None, hf_dir, b) for b in sizes]
    plan += [(CT2, q, d, b) for q, d in exports.items() for b in sizes]

    measured: dict[tuple[str, str | None, int], dict[str, Any]] = {}
    # The exports first: a broken one stops the step before transformers' slower start-up.
    for engine, variant, model_dir, size in plan[len(sizes) :] + plan[: len(sizes)]:
        spec = {**base, "engine": engine, "variant": variant, "model": str(model_dir)}
        spec |= {"batch_size": size, "batched": size > 1}
        measured[engine, variant, size] = _in_child(spec)
        log.info("speed: %s: %.3f s", _label(spec), measured[engine, variant, size]["seconds"])

    # transformers first, then the exports in order
    rows = [_row(measured, engine, variant, size, audio_s) for engine, variant, _, size in plan]
    primary = next(iter(exports))
    hf_row, ct2_row = rows[0], rows[len(sizes)]  # both batched at batch_size (or both at 1)
    hf, ct2 = measured[HF, None, batch_size], measured[CT2, primary, batch_size]
    return {
        "utterances": len(indices),
        "audio_s": round(audio_s, 3),
        "beam_size": options.beam_size,
        "batch_size": batch_size,
        "device": run_device,
        "engines": rows,
        "speedup": round(hf["seconds"] / ct2["seconds"], 3),
        "hf": {
            "seconds": hf_row["seconds"],
            "rtf": hf_row["rtf"],
            "device": run_device,
            "dtype": hf_row["variant"],
        },
        "ct2": {
            "seconds": ct2_row["seconds"],
            "rtf": ct2_row["rtf"],
            "device": run_device,
            "compute_type": ct2_row["compute_type"],
        },
        "hf_texts_equal_ct2": sum(a == b for a, b in zip(hf["texts"], ct2["texts"], strict=True)),
    }
