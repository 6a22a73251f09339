"""Import a faster-whisper (CTranslate2) Whisper folder into a transformers folder, exactly.

`model.base` may name such a folder (Systran/faster-whisper-*): training and merging need the
transformers weights, so it is imported once. The weights are read from CTranslate2's model.bin by
the reader below (the layout ctranslate2's `specs/model_spec.py` writes, binary version 6) and
un-fused into Whisper's transformers names: float16 and bfloat16 upcast to float32 exactly, so a
float16 re-export gives back the same bytes. Quantized models (int8, int16, ...) lost the float
weights and are refused. Which folders are CTranslate2 ones is basemodel.is_ct2_model_dir's
call, made while Snakemake plans.
"""

from __future__ import annotations

import itertools
import logging
import math
import mmap
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whisperforge.core.basemodel import CONFIG_FILE, MODEL_FILE
from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import atomic_dir, read_json_object

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
BINARY_VERSION = 6  # what ctranslate2 3.x and 4.x write
WHISPER_SPEC = "WhisperSpec"
# CTranslate2's DataType ids (include/ctranslate2/types.h): name, bytes per item
DTYPES = {
    0: ("float32", 4),
    1: ("int8", 1),
    2: ("int16", 2),
    3: ("int32", 4),
    4: ("float16", 2),
    5: ("bfloat16", 2),
}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")
ENDOFTEXT = "<|endoftext|>"
STARTOFTRANSCRIPT = "<|startoftranscript|>"
NO_TIMESTAMPS = "<|notimestamps|>"


# --------------------------------------------------------------------------------------------
# Reading model.bin
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ct2Variable:
    name: str
    shape: tuple[int, ...]
    dtype: str  # one of DTYPES' names
    data: memoryview  # the stored little-endian bytes

    def float32(self) -> np.ndarray:
        """The values as float32: an exact upcast of float16 and bfloat16."""
        if self.dtype == "float32":
            values = np.frombuffer(self.data, dtype="<f4").copy()
        elif self.dtype == "float16":
            values = np.frombuffer(self.data, dtype="<f2").astype(np.float32)
        elif self.dtype == "bfloat16":  # bfloat16 is float32's upper half
            values = (np.frombuffer(self.data, dtype="<u2").astype(np.uint32) << 16).view("<f4")
        else:
            raise ValueError(f"{self.name}: {self.dtype} is not a float type")
        return values.reshape(self.shape)

    def scalar(self) -> int | float:
        if self.shape:
            raise ValueError(f"{self.name}: not a scalar")
        numpy_dtype = {"int8": "<i1", "int16": "<i2", "int32": "<i4", "float32": "<f4"}
        if self.dtype not in numpy_dtype:
            raise ValueError(f"{self.name}: a {self.dtype} scalar")
        return np.frombuffer(self.data, dtype=numpy_dtype[self.dtype])[0].item()


@dataclass(frozen=True)
class Ct2Model:
    path: Path  # the model.bin
    version: int
    spec: str
    revision: int
    variables: dict[str, Ct2Variable]  # in file order
    aliases: dict[str, str]  # alias -> the variable it shares

    def get(self, name: str) -> Ct2Variable | None:
        """A variable by name, through an alias (CTranslate2 stores a duplicate only once)."""
        return self.variables.get(self.aliases.get(name, name))

    def parameter_count(self) -> int:
        """Values stored (a shared variable once, as transformers ties it)."""
        return sum(math.prod(variable.shape) for variable in self.variables.values())


class _Cursor:
    """Sequential little-endian reads from model.bin's bytes; running off the end is a
    truncated file, named with what was being read."""

    def __init__(self, path: Path, data: mmap.mmap) -> None:
        self.path, self.data, self.pos = path, memoryview(data), 0
        self.reading = "the header"

    def take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise WhisperforgeError(
                f"{self.path}: truncated ({len(self.data)} bytes) while reading {self.reading}"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))  # length includes the trailing NUL
        if not raw.endswith(b"\0"):
            raise WhisperforgeError(f"{self.path}: malformed string while reading {self.reading}")
        return raw[:-1].decode("utf-8", errors="replace")


def _read_variable(cursor: _Cursor) -> Ct2Variable:
    name = cursor.string()
    cursor.reading = f"variable {name}"
    shape = tuple(cursor.unpack("I") for _ in range(cursor.unpack("B")))
    type_id = cursor.unpack("B")
    if type_id not in DTYPES:
        raise WhisperforgeError(f"{cursor.path}: variable {name} has unknown type id {type_id}")
    dtype, item_size = DTYPES[type_id]
    num_bytes = cursor.unpack("I")
    if num_bytes != item_size * int(np.prod(shape, dtype=np.int64)):
        raise WhisperforgeError(
            f"{cursor.path}: variable {name} holds {num_bytes} bytes, not {dtype} {list(shape)}"
        )
    return Ct2Variable(name, shape, dtype, cursor.take(num_bytes))


def _map(path: Path) -> mmap.mmap:
    """The file's bytes, mapped: a large-v3 model.bin is 3 GB, read on demand."""
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise WhisperforgeError(f"{path}: empty (truncated CTranslate2 model)")
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise WhisperforgeError(
            f"{path}: cannot read the CTranslate2 model ({e.strerror})"
        ) from None


def read_ct2_model(path: str | Path) -> Ct2Model:
    """Parse a CTranslate2 model.bin: header, spec, variables and aliases, checked to the end."""
    path = Path(path)
    data = _map(path)
    cursor = _Cursor(path, data)
    version = cursor.unpack("I")
    if version != BINARY_VERSION:
        raise WhisperforgeError(
            f"{path}: CTranslate2 binary version {version}, this reader knows {BINARY_VERSION} "
            "(what ctranslate2 3.x and 4.x write); not a CTranslate2 model, or re-convert it"
        )
    spec, revision = cursor.string(), cursor.unpack("I")
    variables: dict[str, Ct2Variable] = {}
    for index in range(cursor.unpack("I")):
        cursor.reading = f"the name of variable #{index}"  # _read_variable names it once read
        variable = _read_variable(cursor)
        variables[variable.name] = variable
    cursor.reading = "the aliases"
    aliases = {}
    for _ in range(cursor.unpack("I")):
        alias, target = cursor.string(), cursor.string()
        if target not in variables:
            raise WhisperforgeError(f"{path}: alias {alias} names no variable ({target})")
        aliases[alias] = target
    if cursor.pos != len(data):
        raise WhisperforgeError(f"{path}: {len(data) - cursor.pos} unexpected bytes at the end")
    return Ct2Model(path, version, spec, revision, variables, aliases)


# --------------------------------------------------------------------------------------------
# CTranslate2 variables -> transformers Whisper weights
# --------------------------------------------------------------------------------------------


def _check_floats(model: Ct2Model, ct2_dir: Path) -> None:
    """Refuse a quantized model: its integer weights no longer hold the float values."""
    arrays = [v for v in model.variables.values() if v.shape]
    quantized = sorted({v.dtype for v in arrays if v.dtype not in FLOAT_DTYPES})
    if not quantized:
        return
    floats = {v.dtype for v in arrays if v.dtype in FLOAT_DTYPES}
    # int8_float16 / int8_bfloat16 keep their other variables in that float type
    suffix = next((f"_{f}" for f in ("float16", "bfloat16") if f in floats), "")
    kind = f"{quantized[0]}{suffix}" if quantized[0] == "int8" else quantized[0]
    raise WhisperforgeError(
        f"{ct2_dir}: an {kind} CTranslate2 model cannot be imported exactly; "
        "use its float16 or float32 export"
    )


class _Weights:
    """Takes CTranslate2 variables as float32 arrays, remembering which were used, so that a
    variable the mapping does not know is an error rather than a silently dropped weight."""

    def __init__(self, model: Ct2Model) -> None:
        self.model, self.used = model, set()

    def take(self, name: str) -> np.ndarray:
        variable = self.model.get(name)
        if variable is None:
            raise WhisperforgeError(f"{self.model.path}: lacks variable {name}")
        self.used.add(name)
        return variable.float32()

    def has(self, name: str) -> bool:
        return self.model.get(name) is not None

    def check_all_used(self) -> None:
        left = [n for n, v in self.model.variables.items() if v.shape and n not in self.used]
        if left:
            raise WhisperforgeError(
                f"{self.model.path}: {len(left)} variable(s) a Whisper model does not have "
                f"(first: {left[0]})"
            )


def _zero_key_bias(weights: _Weights, name: str, bias: np.ndarray) -> None:
    """transformers' k_proj has no bias: CTranslate2 stores zeros there; anything else would
    be lost (it shifts every score of a query equally, but the import would not be exact)."""
    if np.any(bias):
        raise WhisperforgeError(
            f"{weights.model.path}: {name} has a non-zero key bias, which transformers' Whisper "
            "cannot hold"
        )


def _split(weights: _Weights, scope: str, parts: int) -> tuple[list, list | None]:
    """A fused linear layer's weight and bias, split into `parts` equal row blocks."""
    weight = np.split(weights.take(f"{scope}/weight"), parts)
    bias = np.split(weights.take(f"{scope}/bias"), parts) if weights.has(f"{scope}/bias") else None
    return weight, bias


def _linear(weights: _Weights, scope: str, prefix: str, out: dict[str, np.ndarray]) -> None:
    out[f"{prefix}.weight"] = weights.take(f"{scope}/weight")
    if weights.has(f"{scope}/bias"):
        out[f"{prefix}.bias"] = weights.take(f"{scope}/bias")


def _layer_norm(weights: _Weights, scope: str, prefix: str, out: dict[str, np.ndarray]) -> None:
    out[f"{prefix}.weight"] = weights.take(f"{scope}/gamma")
    out[f"{prefix}.bias"] = weights.take(f"{scope}/beta")


def _attention(
    weights: _Weights, scope: str, prefix: str, out: dict[str, np.ndarray], *, cross: bool
) -> None:
    """Self-attention fuses q, k, v in linear_0; cross-attention keeps q in linear_0 and fuses
    k, v in linear_1; the output projection is the last linear."""
    if cross:
        (q_w,), q_b = _split(weights, f"{scope}/linear_0", 1)
        (k_w, v_w), kv_b = _split(weights, f"{scope}/linear_1", 2)
        biases = (q_b[0], *kv_b) if q_b and kv_b else None
        out_scope = f"{scope}/linear_2"
    else:
        (q_w, k_w, v_w), qkv_b = _split(weights, f"{scope}/linear_0", 3)
        biases = tuple(qkv_b) if qkv_b else None
        out_scope = f"{scope}/linear_1"
    if biases is None:
        raise WhisperforgeError(f"{weights.model.path}: {scope} has no bias (Whisper's has)")
    _zero_key_bias(weights, scope, biases[1])
    for name, weight in zip(("q_proj", "k_proj", "v_proj"), (q_w, k_w, v_w), strict=True):
        out[f"{prefix}.{name}.weight"] = weight
    out[f"{prefix}.q_proj.bias"], out[f"{prefix}.v_proj.bias"] = biases[0], biases[2]
    _linear(weights, out_scope, f"{prefix}.out_proj", out)
    _layer_norm(weights, f"{scope}/layer_norm", f"{prefix}_layer_norm", out)


def _ffn(weights: _Weights, scope: str, prefix: str, out: dict[str, np.ndarray]) -> None:
    _linear(weights, f"{scope}/linear_0", f"{prefix}.fc1", out)
    _linear(weights, f"{scope}/linear_1", f"{prefix}.fc2", out)
    _layer_norm(weights, f"{scope}/layer_norm", f"{prefix}.final_layer_norm", out)


def count_layers(model: Ct2Model, stack: str) -> int:
    """Layers of the encoder or decoder: layer_0 .. layer_{n-1}."""
    return next(
        i for i in itertools.count() if not model.get(f"{stack}/layer_{i}/ffn/linear_0/weight")
    )


def _encoder(weights: _Weights, layers: int, out: dict[str, np.ndarray]) -> None:
    for conv in ("conv1", "conv2"):
        _linear(weights, f"encoder/{conv}", f"model.encoder.{conv}", out)
    out["model.encoder.embed_positions.weight"] = weights.take(
        "encoder/position_encodings/encodings"
    )
    for i in range(layers):
        scope, prefix = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        _attention(weights, f"{scope}/self_attention", f"{prefix}.self_attn", out, cross=False)
        _ffn(weights, f"{scope}/ffn", prefix, out)
    _layer_norm(weights, "encoder/layer_norm", "model.encoder.layer_norm", out)


def _decoder(weights: _Weights, layers: int, out: dict[str, np.ndarray]) -> None:
    out["model.decoder.embed_tokens.weight"] = weights.take("decoder/embeddings/weight")
    out["model.decoder.embed_positions.weight"] = weights.take(
        "decoder/position_encodings/encodings"
    )
    for i in range(layers):
        scope, prefix = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _attention(weights, f"{scope}/self_attention", f"{prefix}.self_attn", out, cross=False)
        _attention(weights, f"{scope}/attention", f"{prefix}.encoder_attn", out, cross=True)
        _ffn(weights, f"{scope}/ffn", prefix, out)
    _layer_norm(weights, "decoder/layer_norm", "model.decoder.layer_norm", out)


def _output_layer(weights: _Weights, out: dict[str, np.ndarray]) -> bool:
    """Whether the output layer is tied to the embeddings (CTranslate2 aliases or repeats it)."""
    if weights.has("decoder/projection/bias"):
        raise WhisperforgeError(
            f"{weights.model.path}: the output layer has a bias, which Whisper's has not"
        )
    projection = weights.take("decoder/projection/weight")
    if np.array_equal(projection, out["model.decoder.embed_tokens.weight"]):
        return True
    out["proj_out.weight"] = projection
    return False


def whisper_weights(model: Ct2Model) -> tuple[dict[str, np.ndarray], bool]:
    """transformers' Whisper state dict (float32) and whether the output layer is tied."""
    weights, out = _Weights(model), {}
    _encoder(weights, count_layers(model, "encoder"), out)
    _decoder(weights, count_layers(model, "decoder"), out)
    tied = _output_layer(weights, out)
    weights.check_all_used()
    return out, tied


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def _num_heads(model: Ct2Model, ct2_config: dict[str, Any], stack: str, d_model: int) -> int:
    """The spec's num_heads scalar; else the config's; else Whisper's 64-wide heads."""
    variable = model.get(f"{stack}/num_heads")
    if variable is not None:
        return int(variable.scalar())
    if "num_heads" in ct2_config:
        return int(ct2_config["num_heads"])
    log.warning("%s: no %s/num_heads; assuming 64-wide heads", model.path, stack)
    return d_model // 64


def _token_id(tokenizer: Any, token: str, where: Path) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or tokenizer.convert_ids_to_tokens(token_id) != token:
        raise WhisperforgeError(f"{where}: has no token {token}")
    return token_id


def whisper_config(model: Ct2Model, ct2_config: dict[str, Any], tokenizer: Any, tied: bool):
    """The transformers WhisperConfig the weights' shapes and the tokenizer describe."""
    from transformers import WhisperConfig

    d_model, num_mel_bins = model.get("encoder/conv1/weight").shape[:2]
    where = model.path.parent / TOKENIZER_FILE
    eot = _token_id(tokenizer, ENDOFTEXT, where)
    return WhisperConfig(
        architectures=["WhisperForConditionalGeneration"],
        vocab_size=model.get("decoder/embeddings/weight").shape[0],
        num_mel_bins=num_mel_bins,
        d_model=d_model,
        encoder_layers=count_layers(model, "encoder"),
        decoder_layers=count_layers(model, "decoder"),
        encoder_attention_heads=_num_heads(model, ct2_config, "encoder", d_model),
        decoder_attention_heads=_num_heads(model, ct2_config, "decoder", d_model),
        encoder_ffn_dim=model.get("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=model.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=model.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=model.get("decoder/position_encodings/encodings").shape[0],
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=_token_id(tokenizer, STARTOFTRANSCRIPT, where),
        suppress_tokens=list(ct2_config["suppress_ids"]),
        begin_suppress_tokens=list(ct2_config["suppress_ids_begin"]),
        tie_word_embeddings=tied,
        dtype="float32",
    )


def _alignment_heads(ct2_config: dict[str, Any], config: Any) -> list[list[int]]:
    """The config's heads; CTranslate2's own default (every head of the last half) if none."""
    heads = ct2_config.get("alignment_heads")
    if heads is None:
        layers, n = config.decoder_layers, config.decoder_attention_heads
        heads = itertools.product(range(layers // 2, layers), range(n))
    return [list(pair) for pair in heads]


def generation_config(ct2_config: dict[str, Any], config: Any, tokenizer: Any, where: Path):
    """The generation config (what HF generate() and a CTranslate2 re-export read) from the
    CTranslate2 config: languages, suppressed tokens, alignment heads."""
    from transformers import GenerationConfig

    def tid(token: str) -> int:
        return _token_id(tokenizer, token, where / TOKENIZER_FILE)

    lang_ids = list(ct2_config["lang_ids"])
    extra = {}
    if lang_ids:  # English-only models have no language tokens
        extra["lang_to_id"] = {tokenizer.convert_ids_to_tokens(i): i for i in lang_ids}
    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        forced_decoder_ids=None,
        begin_suppress_tokens=list(ct2_config["suppress_ids_begin"]),
        suppress_tokens=list(ct2_config["suppress_ids"]),
        is_multilingual=bool(lang_ids),
        task_to_id={"translate": tid("<|translate|>"), "transcribe": tid("<|transcribe|>")},
        no_timestamps_token_id=tid(NO_TIMESTAMPS),
        prev_sot_token_id=tid("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        alignment_heads=_alignment_heads(ct2_config, config),
        median_filter_width=7,
        **extra,
    )


# --------------------------------------------------------------------------------------------
# The import
# --------------------------------------------------------------------------------------------


def read_whisper(ct2_dir: Path) -> tuple[Ct2Model, dict[str, Any]]:
    """model.bin and config.json of a float CTranslate2 Whisper, or one line on what is wrong."""
    if not ct2_dir.is_dir():
        raise WhisperforgeError(f"{ct2_dir}: model directory not found")
    if not (ct2_dir / MODEL_FILE).is_file():
        raise WhisperforgeError(f"{ct2_dir / MODEL_FILE}: not found (not a CTranslate2 model)")
    for name in (CONFIG_FILE, TOKENIZER_FILE):
        if not (ct2_dir / name).is_file():
            raise WhisperforgeError(f"{ct2_dir / name}: not found (the import needs it)")
    model = read_ct2_model(ct2_dir / MODEL_FILE)
    if model.spec != WHISPER_SPEC:
        raise WhisperforgeError(
            f"{model.path}: a CTranslate2 {model.spec or 'unnamed'} model, not {WHISPER_SPEC}"
        )
    _check_floats(model, ct2_dir)
    ct2_config = read_json_object(
        ct2_dir / CONFIG_FILE,
        "CTranslate2 Whisper config",
        required=("suppress_ids", "suppress_ids_begin", "lang_ids"),
    )
    return model, ct2_config


def _tokenizer(ct2_dir: Path, vocab_size: int) -> Any:
    """The tokenizer of tokenizer.json, with <|endoftext|> as padding and the timestamp tokens
    up to the model's vocabulary (faster-whisper's tokenizer.json stops at <|notimestamps|>;
    transformers' Whisper tokenizers have them, and timestamped training text needs them)."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizerFast

    path = ct2_dir / TOKENIZER_FILE
    try:
        tokenizer = WhisperTokenizerFast(tokenizer_file=str(path))
    except Exception as e:  # tokenizers raises its own Exception types on a bad file
        raise WhisperforgeError(f"{path}: not a tokenizer ({type(e).__name__})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = ENDOFTEXT
    first = _token_id(tokenizer, NO_TIMESTAMPS, path) + 1
    missing = vocab_size - len(tokenizer)
    if missing > 0 and len(tokenizer) == first:
        # the names CTranslate2's converter gives these ids: <|0.00|> .. in 20 ms steps
        names = [f"<|{i * 0.02:.2f}|>" for i in range(missing)]
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in names])
    return tokenizer


def _check_against_transformers(state: dict[str, np.ndarray], config: Any, where: Path) -> None:
    """Every parameter transformers' Whisper has, with its shape, and nothing more."""
    import torch
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):  # the shapes only, no memory
        expected = WhisperForConditionalGeneration(config).state_dict()
    if config.tie_word_embeddings:
        expected.pop("proj_out.weight", None)
    shapes = {name: tuple(t.shape) for name, t in expected.items()}
    got = {name: a.shape for name, a in state.items()}
    if got != shapes:
        wrong = sorted(set(shapes.items()) ^ set(got.items()))
        raise WhisperforgeError(f"{where}: weights do not fit transformers' Whisper ({wrong[0]})")


def _write_processor(ct2_dir: Path, tmp: Path, tokenizer: Any, num_mel_bins: int) -> None:
    """Tokenizer and feature extractor files (faster-whisper's preprocessor config if any)."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    feature_extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(tmp)
    feature_extractor.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    source = ct2_dir / PREPROCESSOR_FILE
    if source.is_file():
        preprocessor = read_json_object(source, "preprocessor config", required=("feature_size",))
        if preprocessor["feature_size"] != num_mel_bins:
            raise WhisperforgeError(
                f"{source}: feature_size {preprocessor['feature_size']}, the model has "
                f"{num_mel_bins} mel bins"
            )
        shutil.copyfile(source, tmp / PREPROCESSOR_FILE)


def _apply_umask(folder: Path) -> None:
    """The usual modes for the files (safetensors writes them owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _save_weights(state: dict[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file

    save_file(state, str(path), metadata={"format": "pt"})


def import_ct2_model(
    ct2_dir: str | Path,
    out_dir: str | Path,
    *,
    progress: Callable[[str], None] = log.info,
) -> Path:
    """Write a transformers Whisper folder at `out_dir` from the CTranslate2 folder `ct2_dir`.

    model.safetensors (float32), config.json, generation_config.json, tokenizer and preprocessor
    files; built beside `out_dir` and moved into place only when complete.
    """
    ct2_dir, out_dir = Path(ct2_dir).expanduser(), Path(out_dir)
    model, ct2_config = read_whisper(ct2_dir)
    state, tied = whisper_weights(model)
    tokenizer = _tokenizer(ct2_dir, state["model.decoder.embed_tokens.weight"].shape[0])
    config = whisper_config(model, ct2_config, tokenizer, tied)
    _check_against_transformers(state, config, model.path)
    gen_config = generation_config(ct2_config, config, tokenizer, ct2_dir)
    with atomic_dir(out_dir, what="the imported base model") as tmp:
        _save_weights(state, tmp / "model.safetensors")
        config.save_pretrained(tmp)
        gen_config.save_pretrained(tmp)
        _write_processor(ct2_dir, tmp, tokenizer, config.num_mel_bins)
        _apply_umask(tmp)
    progress(
        f"imported {ct2_dir} ({len(model.variables)} CTranslate2 variables, "
        f"{config.encoder_layers}+{config.decoder_layers} layers, d_model {config.d_model}) "
        f"into {out_dir}"
    )
    return out_dir
