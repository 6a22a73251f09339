"""Export a plain (merged) HF Whisper directory to CTranslate2, proven by a faster-whisper decode.

The export is built in a temporary directory beside `out_dir` and only renamed into place after
its mel-bin count matches the model's and faster-whisper has loaded it and transcribed one
utterance offline; any failure leaves `out_dir` as it was (the previous export, or none), and a
full disk is one line naming `out_dir` and the space left.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError, one_line
from whisperforge.core.files import atomic_dir, is_full_disk
from whisperforge.core.manifest import read_manifest, utterance_id
from whisperforge.decode.transcribe import (
    decode_one,
    load_audio,
    load_model,
    pick_device_and_compute_type,
)

__all__ = ["QUANTIZATIONS", "export_ct2", "pick_device_and_compute_type"]

log = logging.getLogger(__name__)

QUANTIZATIONS = (
    "float32",
    "float16",
    "bfloat16",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
)
# faster-whisper reads these two from the export; without them it fetches a tokenizer from the
# hub and assumes 80 mel bins (wrong for large-v3 and turbo, which have 128).
COPY_FILES = ("tokenizer.json", "preprocessor_config.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PROBE_THREADS = 2


def check_hf_dir(model_dir: Path) -> dict[str, Any]:
    """The HF config of a plain Whisper model dir, or a WhisperforgeError saying what is wrong."""
    if not model_dir.is_dir():
        raise WhisperforgeError(f"{model_dir}: model directory not found")
    has_weights = any((model_dir / name).is_file() for name in WEIGHT_FILES)
    has_config = (model_dir / "config.json").is_file()
    if not (has_weights and has_config):
        missing = "model.safetensors" if not has_weights else "config.json"
        if (model_dir / "adapter_config.json").is_file():
            raise WhisperforgeError(
                f"{model_dir}: not a merged HF model (a PEFT adapter; no {missing}); "
                "merge the adapter first"
            )
        raise WhisperforgeError(f"{model_dir}: not an HF model directory (no {missing})")
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise WhisperforgeError(f"{model_dir / 'config.json'}: not valid JSON ({e.msg})") from None
    if config.get("model_type") != "whisper" or "num_mel_bins" not in config:
        raise WhisperforgeError(f"{model_dir / 'config.json'}: not a Whisper config")
    missing = [name for name in COPY_FILES if not (model_dir / name).is_file()]
    if missing:
        raise WhisperforgeError(
            f"{model_dir}: lacks {', '.join(missing)} (faster-whisper needs it in the export)"
        )
    return config


def _export_mel_bins(ct2_dir: Path) -> int:
    path = ct2_dir / "preprocessor_config.json"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["feature_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise WhisperforgeError(f"{path}: no feature_size ({one_line(e)})") from None


def _probe(ct2_dir: Path, record: dict[str, Any], probe_manifest: Path, mel_bins: int) -> dict:
    """Load the export in faster-whisper and transcribe one utterance (beam 1, zh)."""
    t0 = time.perf_counter()
    # On the CPU: export_ct2 claims no GPU, and one utterance decodes in seconds there.
    model, device, compute_type = load_model(ct2_dir, "auto", threads=PROBE_THREADS, device="cpu")
    if model.model.n_mels != mel_bins or model.feature_extractor.mel_filters.shape[0] != mel_bins:
        raise WhisperforgeError(
            f"{ct2_dir}: faster-whisper loaded {model.model.n_mels} mel bins (features: "
            f"{model.feature_extractor.mel_filters.shape[0]}), the model has {mel_bins}"
        )
    audio = load_audio(record["audio"]["path"], probe_manifest)
    text = decode_one(model, audio, language="zh", task="transcribe", beam_size=1)
    return {
        "probe_id": utterance_id(record),
        "probe_text": text[:200],  # a random-init model babbles 448 tokens
        "device": device,
        "compute_type": compute_type,
        "probe_s": round(time.perf_counter() - t0, 3),
    }


def export_ct2(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    quantization: str = "float16",
    probe_manifest: str | Path | None = None,
) -> dict[str, Any]:
    """Convert `model_dir` to a CTranslate2 export at `out_dir`, check it, return the facts.

    Facts: model_dir, quantization, num_mel_bins, convert_s, seconds and, with a probe manifest,
    probe_id, probe_text, device, compute_type, probe_s.
    """
    from ctranslate2.converters import TransformersConverter

    t0 = time.perf_counter()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if quantization not in QUANTIZATIONS:
        raise WhisperforgeError(
            f"export.quantization: {quantization!r} is not one of {', '.join(QUANTIZATIONS)}"
        )
    config = check_hf_dir(model_dir)
    mel_bins = int(config["num_mel_bins"])
    record = None
    if probe_manifest is not None:
        probe_manifest = Path(probe_manifest)
        records = read_manifest(probe_manifest)
        if not records:
            raise WhisperforgeError(f"{probe_manifest}: manifest has no utterances to probe")
        record = records[0]

    facts: dict[str, Any] = {"model_dir": str(model_dir), "quantization": quantization}
    with atomic_dir(out_dir, what=f"a CTranslate2 {quantization} export") as tmp:
        try:
            # force: the converter replaces the (empty) temp dir with its own
            TransformersConverter(
                str(model_dir),
                copy_files=list(COPY_FILES),
                load_as_float16=quantization in ("float16", "int8_float16"),
            ).convert(str(tmp), quantization=quantization, force=True)
        except Exception as e:  # the converter raises anything from KeyError to OSError
            if is_full_disk(e):
                raise  # atomic_dir's one line
            raise WhisperforgeError(
                f"{model_dir}: CTranslate2 conversion failed ({one_line(e)})"
            ) from e
        facts["convert_s"] = round(time.perf_counter() - t0, 3)
        export_bins = _export_mel_bins(tmp)
        if export_bins != mel_bins:
            raise WhisperforgeError(
                f"{model_dir}: export has {export_bins} mel bins (preprocessor_config.json "
                f"feature_size) but config.json num_mel_bins is {mel_bins}"
            )
        facts["num_mel_bins"] = mel_bins
        if record is not None:
            try:
                facts.update(_probe(tmp, record, probe_manifest, mel_bins))
            except WhisperforgeError as e:
                raise WhisperforgeError(f"{model_dir}: export check failed: {e}") from e
            except Exception as e:
                raise WhisperforgeError(
                    f"{model_dir}: export check failed: faster-whisper could not transcribe "
                    f"{record['audio']['path']} ({one_line(e)})"
                ) from e
    facts["seconds"] = round(time.perf_counter() - t0, 3)
    log.info("exported %s -> %s: %s", model_dir, out_dir, facts)
    return facts
