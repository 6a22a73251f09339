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
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import tempfile
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

from whisperforge.errors import WhisperforgeError

DEFAULT_TIKTOKEN_PATH = Path(__file__).parent / "assets" / "multilingual.tiktoken"

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


def _model_config(
    tokenizer: WhisperTokenizerFast,
    *,
    d_model: int,
    encoder_layers: int,
    decoder_layers: int,
    attention_heads: int,
    ffn_dim: int,
    num_mel_bins: int,
) -> WhisperConfig:
    """A WhisperConfig of toy size with large-v3's vocabulary and special ids."""
    eot = _token_id(tokenizer, ENDOFTEXT)
    return WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=num_mel_bins,
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=attention_heads,
        decoder_attention_heads=attention_heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_source_positions=MAX_SOURCE_POSITIONS,
        max_target_positions=MAX_TARGET_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=_token_id(tokenizer, STARTOFTRANSCRIPT),
        begin_suppress_tokens=_begin_suppress_tokens(tokenizer),
        # Whisper's 0.02 suits d_model 1280; at toy width it leaves attention near a saddle
        # (q.k ~ 0) that the model escapes only after hundreds of steps: scale it to the width.
        init_std=d_model**-0.5,
    )


def _generation_config(tokenizer: WhisperTokenizerFast, config: WhisperConfig) -> GenerationConfig:
    """A complete Whisper generation config (what HF generate() and CTranslate2 read)."""
    last_layer = config.decoder_layers - 1
    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=MAX_TARGET_POSITIONS,
        forced_decoder_ids=None,
        begin_suppress_tokens=_begin_suppress_tokens(tokenizer),
        suppress_tokens=[],
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
        alignment_heads=[[last_layer, h] for h in range(config.decoder_attention_heads)],
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
) -> Path:
    """Write a complete, randomly initialised multilingual HF Whisper model directory.

    The directory holds `config.json`, `model.safetensors`, `generation_config.json`,
    `preprocessor_config.json`, `processor_config.json`, `tokenizer.json` and
    `tokenizer_config.json`. It is built in a temporary directory beside `out_dir` and renamed
    into place at the end, so a failure never leaves partial output. Returns `out_dir`.
    """
    if d_model % attention_heads:
        raise WhisperforgeError(f"d_model {d_model} is not divisible by {attention_heads} heads")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = build_whisper_tokenizer()
    config = _model_config(
        tokenizer,
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        attention_heads=attention_heads,
        ffn_dim=ffn_dim,
        num_mel_bins=num_mel_bins,
    )
    model = _random_model(config, seed)
    model.generation_config = _generation_config(tokenizer, config)
    feature_extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _write_model_dir(tmp_dir, model, tokenizer, feature_extractor)
        _publish(tmp_dir, out_dir)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return out_dir
