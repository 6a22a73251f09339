"""Build a tiny, randomly initialised multilingual Whisper entirely offline.

The tokenizer is the real multilingual Whisper tokenizer (large-v3 layout, 51,866 ids), rebuilt
from the BPE ranks in `assets/multilingual.tiktoken`; the model is a Whisper of toy size with the
same vocabulary, so every stage of the workflow (fine-tuning, CTranslate2 conversion,
faster-whisper decoding) can be exercised on a laptop without downloading a checkpoint.

Id layout (identical to openai/whisper-large-v3)::

    0 .. 50256        byte-level BPE ranks from the tiktoken file
    50257             <|endoftext|>
    50258             <|startoftranscript|>
    50259 .. 50358    100 language tokens, Whisper's order (<|en|>, <|zh|>, ..., <|yue|>)
    50359 .. 50364    <|translate|> <|transcribe|> <|startoflm|> <|startofprev|>
                      <|nospeech|> <|notimestamps|>
    50365 .. 51865    timestamps <|0.00|> .. <|30.00|> (0.02 s steps)

`build_published_shape` builds a published Whisper's exact architecture (`PUBLISHED_SHAPES`)
with random weights, optionally narrowed in width for fast tests.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tokenizers import AddedToken
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizerFast,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from whisperforge.core.errors import WhisperforgeError

DEFAULT_TIKTOKEN_PATH = Path(__file__).parent.parent / "assets" / "multilingual.tiktoken"

ENDOFTEXT = "<|endoftext|>"
STARTOFTRANSCRIPT = "<|startoftranscript|>"
TASK_TOKENS = ("<|translate|>", "<|transcribe|>")
CONTROL_TOKENS = ("<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>")
NO_TIMESTAMPS = "<|notimestamps|>"
NUM_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in 0.02 s steps
TIMESTAMP_STEP = 0.02
VOCAB_SIZE = 51866  # large-v3 layout: 50257 BPE ranks + 108 specials + 1501 timestamps
MAX_SOURCE_POSITIONS = 1500
MAX_TARGET_POSITIONS = 448
SHAPE_FILE = "whisperforge-shape.json"


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


def load_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    """Read a tiktoken rank file (`<base64 token> <rank>` per line) into `{token_bytes: rank}`.

    Raises `WhisperforgeError` when a line is malformed or the ranks are not exactly `0..n-1`.
    """
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise WhisperforgeError(f"{path}:{lineno}: expected '<base64 token> <rank>'")
        try:
            token = base64.b64decode(fields[0])
        except binascii.Error as exc:
            raise WhisperforgeError(f"{path}:{lineno}: token is not valid base64") from exc
        ranks[token] = int(fields[1])
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise WhisperforgeError(
            f"{path}: BPE ranks are not the contiguous range 0..{len(ranks) - 1}"
        )
    return ranks


def _bpe_parts(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Apply tiktoken-style BPE to `token` using only merges whose result ranks below `max_rank`."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 1:
        best_rank, best_index = max_rank, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_rank, best_index = rank, i
        if best_index < 0:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    return parts


def recover_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Recover the ordered BPE merge list implied by tiktoken ranks.

    A token of rank `r` is produced by exactly one merge: the last step of BPE on its own bytes
    restricted to merges ranked below `r`. Listing those pairs by rank makes a merge-rank BPE
    (the `tokenizers` model) behave exactly like tiktoken's lowest-rank-first BPE. Tokens that
    BPE cannot reach (e.g. the empty token at rank 50256) yield no merge.
    """
    merges: list[tuple[bytes, bytes]] = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) < 2:
            continue
        parts = _bpe_parts(token, ranks, rank)
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return merges


def _byte_level(token: bytes, byte_encoder: dict[int, str]) -> str:
    """Spell raw bytes in GPT-2's printable byte-level alphabet."""
    return "".join(byte_encoder[b] for b in token)


def language_tokens() -> list[str]:
    """The 100 language tokens in Whisper's order (large-v3, ending with `<|yue|>`)."""
    return [f"<|{code}|>" for code in LANGUAGES]


def special_tokens() -> list[str]:
    """Special tokens after `<|endoftext|>`, in OpenAI's id order (timestamps excluded)."""
    return [STARTOFTRANSCRIPT, *language_tokens(), *TASK_TOKENS, *CONTROL_TOKENS]


def timestamp_tokens() -> list[str]:
    """The 1501 timestamp tokens `<|0.00|>` .. `<|30.00|>`."""
    return [f"<|{i * TIMESTAMP_STEP:.2f}|>" for i in range(NUM_TIMESTAMPS)]


def build_whisper_tokenizer(tiktoken_path: Path | None = None) -> WhisperTokenizerFast:
    """Build the multilingual Whisper tokenizer (large-v3 layout) from tiktoken BPE ranks.

    The BPE vocabulary and merges come from `tiktoken_path` (default: the bundled
    `assets/multilingual.tiktoken`); pre-tokenisation is byte-level with GPT-2's regex, which is
    the pattern Whisper uses. bos/eos/unk/pad are all `<|endoftext|>`, as on the hub.
    """
    ranks = load_tiktoken_ranks(tiktoken_path or DEFAULT_TIKTOKEN_PATH)
    byte_encoder = bytes_to_unicode()
    vocab = {_byte_level(token, byte_encoder): rank for token, rank in ranks.items()}
    merges = [
        (_byte_level(a, byte_encoder), _byte_level(b, byte_encoder))
        for a, b in recover_merges(ranks)
    ]
    tokenizer = WhisperTokenizerFast(
        vocab=vocab,
        merges=merges,
        unk_token=ENDOFTEXT,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        add_prefix_space=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens()})
    tokenizer.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t in timestamp_tokens()]
    )
    _check_layout(tokenizer, first_special=len(ranks))
    return tokenizer


def _check_layout(tokenizer: WhisperTokenizerFast, first_special: int) -> None:
    """Fail loudly if the special/timestamp tokens did not land on consecutive ids."""
    expected = [ENDOFTEXT, *special_tokens(), *timestamp_tokens()]
    ids = tokenizer.convert_tokens_to_ids(expected)
    if ids != list(range(first_special, first_special + len(expected))):
        raise WhisperforgeError("special tokens did not get consecutive ids after the BPE ranks")
    if len(tokenizer) != VOCAB_SIZE:
        raise WhisperforgeError(f"tokenizer has {len(tokenizer)} ids, expected {VOCAB_SIZE}")


# --------------------------------------------------------------------------------------------
# Published shapes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhisperShape:
    """The architecture of a Whisper model (everything but the vocabulary)."""

    d_model: int
    encoder_layers: int
    decoder_layers: int
    attention_heads: int
    ffn_dim: int
    num_mel_bins: int
    alignment_heads: tuple[tuple[int, int], ...]  # (decoder layer, head) pairs for DTW timing


# Alignment heads are openai-whisper's `_ALIGNMENT_HEADS` masks (whisper/__init__.py) decoded;
# they equal the `alignment_heads` in each model's generation_config.json on the hub.
_ALIGNMENT_HEADS: dict[str, tuple[tuple[int, int], ...]] = {
    "tiny": ((2, 2), (3, 0), (3, 2), (3, 3), (3, 4), (3, 5)),
    "base": ((3, 1), (4, 2), (4, 3), (4, 7), (5, 1), (5, 2), (5, 4), (5, 6)),
    "small": ((5, 3), (5, 9), (8, 0), (8, 4), (8, 7), (8, 8), (9, 0), (9, 7), (9, 9), (10, 5)),
    "medium": ((13, 15), (15, 4), (15, 15), (16, 1), (20, 0), (23, 4)),
    "large-v3": (
        (7, 0),
        (10, 17),
        (12, 18),
        (13, 12),
        (16, 1),
        (17, 14),
        (19, 11),
        (21, 4),
        (24, 1),
        (25, 6),
    ),
    "large-v3-turbo": ((2, 4), (2, 11), (3, 3), (3, 6), (3, 11), (3, 14)),
}

# Dimensions from the openai/whisper model cards. Every shape is built with the multilingual
# large-v3 tokenizer (51,866 ids, with <|yue|>); real tiny/base/small/medium use the v2 layout
# (51,865 ids), so for those only the architecture, not the vocabulary, is exact.
PUBLISHED_SHAPES: dict[str, WhisperShape] = {
    name: WhisperShape(*dims, alignment_heads=_ALIGNMENT_HEADS[name])
    for name, dims in {
        # d_model, encoder_layers, decoder_layers, attention_heads, ffn_dim, num_mel_bins
        "tiny": (384, 4, 4, 6, 1536, 80),
        "base": (512, 6, 6, 8, 2048, 80),
        "small": (768, 12, 12, 12, 3072, 80),
        "medium": (1024, 24, 24, 16, 4096, 80),
        "large-v3": (1280, 32, 32, 20, 5120, 128),
        "large-v3-turbo": (1280, 32, 4, 20, 5120, 128),
    }.items()
}


def published_shape(
    name: str, *, d_model: int | None = None, ffn_dim: int | None = None
) -> WhisperShape:
    """The published shape `name`, optionally narrowed to `d_model` / `ffn_dim`.

    Narrowing keeps layer counts, heads, mel bins and alignment heads (they index layers and
    heads only); `ffn_dim` defaults to 4 x `d_model`, Whisper's ratio, when only `d_model` is
    narrowed. Raises `WhisperforgeError` for an unknown name or a width the heads cannot split.
    """
    shape = PUBLISHED_SHAPES.get(name)
    if shape is None:
        known = ", ".join(PUBLISHED_SHAPES)
        raise WhisperforgeError(f"unknown Whisper shape {name!r} (known: {known})")
    if d_model is None and ffn_dim is None:
        return shape
    d_model = shape.d_model if d_model is None else d_model
    if ffn_dim is None:
        ffn_dim = 4 * d_model if d_model != shape.d_model else shape.ffn_dim
    if d_model <= 0 or ffn_dim <= 0:
        raise WhisperforgeError(f"{name}: d_model {d_model} and ffn_dim {ffn_dim} must be > 0")
    if d_model % shape.attention_heads:
        raise WhisperforgeError(
            f"{name}: d_model {d_model} is not divisible by its {shape.attention_heads} "
            "attention heads"
        )
    return replace(shape, d_model=d_model, ffn_dim=ffn_dim)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def _token_id(tokenizer: WhisperTokenizerFast, token: str) -> int:
    """Id of one token (no unk fallback)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or tokenizer.convert_ids_to_tokens(token_id) != token:
        raise WhisperforgeError(f"token {token!r} is not in the tokenizer")
    return token_id


def _begin_suppress_tokens(tokenizer: WhisperTokenizerFast) -> list[int]:
    """Whisper suppresses a bare space (`Ġ`) and `<|endoftext|>` as the first sampled token."""
    return [_token_id(tokenizer, "Ġ"), _token_id(tokenizer, ENDOFTEXT)]


def non_speech_tokens(tokenizer: WhisperTokenizerFast) -> list[int]:
    """Ids of speaker tags and non-speech annotations (`♪♪`, `[`, `(`), as openai-whisper has them.

    A port of openai-whisper's `Tokenizer.non_speech_tokens`: the single-token spellings (with
    and without a leading space) of those symbols, the first token of the musical symbols, and
    a word-initial `-` or `'`; basic punctuation (`,` `.` `?` `!`) stays allowed.
    """

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += [
        "<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", '("',
        "((", "))", "(((", ")))", "[[", "]]", "{{", "}}", "♪♪", "♪♪♪",
    ]  # fmt: skip
    # U+2640..U+267F symbols share their first two UTF-8 bytes: suppressing the first token is
    # safe even when a symbol takes several tokens.
    miscellaneous = set("♩♪♫♬♭♮♯")
    result = {encode(" -")[0], encode(" '")[0]}
    for symbol in symbols + sorted(miscellaneous):
        for tokens in (encode(symbol), encode(" " + symbol)):
            if len(tokens) == 1 or symbol in miscellaneous:
                result.add(tokens[0])
    return sorted(result)


def suppress_tokens(tokenizer: WhisperTokenizerFast) -> list[int]:
    """The hub's `suppress_tokens`: non-speech tokens plus the task/control specials.

    openai-whisper and faster-whisper add the same specials at decode time; <|endoftext|> and
    <|notimestamps|> are not in the list.
    """
    specials = [
        STARTOFTRANSCRIPT,
        *TASK_TOKENS,
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
    ]
    return sorted({*non_speech_tokens(tokenizer), *(_token_id(tokenizer, t) for t in specials)})


def _model_config(tokenizer: WhisperTokenizerFast, shape: WhisperShape) -> WhisperConfig:
    """A WhisperConfig of `shape` with large-v3's vocabulary and special ids."""
    eot = _token_id(tokenizer, ENDOFTEXT)
    return WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=shape.num_mel_bins,
        d_model=shape.d_model,
        encoder_layers=shape.encoder_layers,
        decoder_layers=shape.decoder_layers,
        encoder_attention_heads=shape.attention_heads,
        decoder_attention_heads=shape.attention_heads,
        encoder_ffn_dim=shape.ffn_dim,
        decoder_ffn_dim=shape.ffn_dim,
        max_source_positions=MAX_SOURCE_POSITIONS,
        max_target_positions=MAX_TARGET_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=_token_id(tokenizer, STARTOFTRANSCRIPT),
        begin_suppress_tokens=_begin_suppress_tokens(tokenizer),
        # Whisper's 0.02 suits d_model 1280; at toy width it leaves attention near a saddle
        # (q.k ~ 0) that the model escapes only after hundreds of steps: scale it to the width.
        init_std=shape.d_model**-0.5,
    )


def whisper_config(
    shape: WhisperShape, tokenizer: WhisperTokenizerFast | None = None
) -> WhisperConfig:
    """The HF `WhisperConfig` that `shape` builds (large-v3 vocabulary), without any weights."""
    return _model_config(tokenizer or build_whisper_tokenizer(), shape)


def _generation_config(
    tokenizer: WhisperTokenizerFast, config: WhisperConfig, shape: WhisperShape
) -> GenerationConfig:
    """A complete Whisper generation config (what HF generate() and CTranslate2 read)."""
    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=MAX_TARGET_POSITIONS,
        forced_decoder_ids=None,
        begin_suppress_tokens=_begin_suppress_tokens(tokenizer),
        suppress_tokens=suppress_tokens(tokenizer),
        is_multilingual=True,
        lang_to_id={tok: _token_id(tokenizer, tok) for tok in language_tokens()},
        task_to_id={
            "translate": _token_id(tokenizer, "<|translate|>"),
            "transcribe": _token_id(tokenizer, "<|transcribe|>"),
        },
        no_timestamps_token_id=_token_id(tokenizer, NO_TIMESTAMPS),
        prev_sot_token_id=_token_id(tokenizer, "<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
        alignment_heads=[list(pair) for pair in shape.alignment_heads],
        median_filter_width=7,
    )


def _random_model(config: WhisperConfig, seed: int) -> WhisperForConditionalGeneration:
    """Randomly initialise a Whisper model, deterministically for a given seed."""
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.eval()
    return model


def _write_model_dir(
    target: Path,
    model: WhisperForConditionalGeneration,
    tokenizer: WhisperTokenizerFast,
    feature_extractor: WhisperFeatureExtractor,
) -> None:
    """Save model, generation config, processor, feature extractor and tokenizer into `target`.

    transformers 5's `WhisperProcessor.save_pretrained` writes only `processor_config.json`, so
    the feature extractor and tokenizer are saved on their own as well (CTranslate2 and
    faster-whisper read `tokenizer.json` and `preprocessor_config.json` directly).
    """
    model.save_pretrained(target, safe_serialization=True)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(
        target
    )
    feature_extractor.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _apply_umask(tmp_dir: Path) -> None:
    """Give `tmp_dir` (created 0700 by mkdtemp) and its files the usual umask-based modes."""
    umask = os.umask(0)
    os.umask(umask)
    tmp_dir.chmod(0o777 & ~umask)
    for path in tmp_dir.iterdir():
        path.chmod(0o666 & ~umask)


def _publish(tmp_dir: Path, out_dir: Path) -> None:
    """Move the finished `tmp_dir` to `out_dir`, replacing any previous output."""
    _apply_umask(tmp_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp_dir, out_dir)


def _check_alignment_heads(shape: WhisperShape) -> None:
    """Every alignment head must name an existing decoder layer and head."""
    for layer, head in shape.alignment_heads:
        if not (0 <= layer < shape.decoder_layers and 0 <= head < shape.attention_heads):
            raise WhisperforgeError(
                f"alignment head ({layer}, {head}) is outside {shape.decoder_layers} decoder "
                f"layers x {shape.attention_heads} heads"
            )


def _build(out_dir: Path, shape: WhisperShape, seed: int, record: dict[str, object] | None) -> Path:
    """Build `shape` into `out_dir` atomically; `record` (if any) goes to `SHAPE_FILE`."""
    if shape.d_model % shape.attention_heads:
        raise WhisperforgeError(
            f"d_model {shape.d_model} is not divisible by {shape.attention_heads} heads"
        )
    _check_alignment_heads(shape)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = build_whisper_tokenizer()
    config = _model_config(tokenizer, shape)
    model = _random_model(config, seed)
    model.generation_config = _generation_config(tokenizer, config, shape)
    feature_extractor = WhisperFeatureExtractor(feature_size=shape.num_mel_bins)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _write_model_dir(tmp_dir, model, tokenizer, feature_extractor)
        if record is not None:
            (tmp_dir / SHAPE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        _publish(tmp_dir, out_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return out_dir


def build_tiny_whisper(
    out_dir: Path,
    *,
    d_model: int = 96,
    encoder_layers: int = 2,
    decoder_layers: int = 2,
    attention_heads: int = 4,
    ffn_dim: int = 384,
    num_mel_bins: int = 80,
    seed: int = 0,
    alignment_heads: Sequence[tuple[int, int]] | None = None,
) -> Path:
    """Write a complete, randomly initialised multilingual HF Whisper model directory.

    The directory holds `config.json`, `model.safetensors`, `generation_config.json`,
    `preprocessor_config.json`, `processor_config.json`, `tokenizer.json` and
    `tokenizer_config.json`. It is built in a temporary directory beside `out_dir` and renamed
    into place at the end, so a failure never leaves partial output. `alignment_heads`
    defaults to every head of the last decoder layer. Returns `out_dir`.
    """
    if alignment_heads is None:
        alignment_heads = [(decoder_layers - 1, h) for h in range(attention_heads)]
    shape = WhisperShape(
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        attention_heads=attention_heads,
        ffn_dim=ffn_dim,
        num_mel_bins=num_mel_bins,
        alignment_heads=tuple((int(layer), int(head)) for layer, head in alignment_heads),
    )
    return _build(out_dir, shape, seed, record=None)


def build_published_shape(
    out_dir: Path,
    name: str,
    *,
    d_model: int | None = None,
    ffn_dim: int | None = None,
    seed: int = 0,
) -> Path:
    """Build published Whisper `name` (a `PUBLISHED_SHAPES` key) with random weights, offline.

    Layer counts, heads, mel bins, alignment heads and the generation config are the published
    ones; `d_model` / `ffn_dim` narrow the width for fast tests (see `published_shape`). The
    directory is `build_tiny_whisper`'s plus `whisperforge-shape.json`, which names the shape
    and whether it was narrowed. Returns `out_dir`.
    """
    shape = published_shape(name, d_model=d_model, ffn_dim=ffn_dim)
    record = {
        "shape": name,
        "narrowed": shape != PUBLISHED_SHAPES[name],
        "d_model": shape.d_model,
        "ffn_dim": shape.ffn_dim,
    }
    return _build(out_dir, shape, seed, record)
