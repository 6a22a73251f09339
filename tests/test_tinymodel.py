"""The offline tiny Whisper: real tokenizer, loadable by HF, CTranslate2 and faster-whisper."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import tiktoken
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizerFast

from whisperforge.core.errors import WhisperforgeError
from whisperforge.model import tinymodel
from whisperforge.model.tinymodel import (
    DEFAULT_TIKTOKEN_PATH,
    PUBLISHED_SHAPES,
    SHAPE_FILE,
    build_published_shape,
    build_tiny_whisper,
    build_whisper_tokenizer,
    load_tiktoken_ranks,
    published_shape,
    suppress_tokens,
    whisper_config,
)

WHISPER_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

TEXTS = [
    "甚至出现交易几乎停滞的情况",
    "今天北京的天气很好，我们去颐和园散步吧！",
    "我在Beijing工作了12345天, it's 3.14159元; OK?  好的  \n下一行",
    "AISHELL-1 是一个开源的中文语音数据集，共 178 小时。",
    "  leading spaces and émojis 😀 and 日本語とカタカナ",
]

EXPECTED_IDS = {
    "<|endoftext|>": 50257,
    "<|startoftranscript|>": 50258,
    "<|en|>": 50259,
    "<|zh|>": 50260,
    "<|yue|>": 50358,
    "<|translate|>": 50359,
    "<|transcribe|>": 50360,
    "<|startoflm|>": 50361,
    "<|startofprev|>": 50362,
    "<|nospeech|>": 50363,
    "<|notimestamps|>": 50364,
    "<|0.00|>": 50365,
    "<|30.00|>": 51865,
}

# `suppress_tokens` of openai/whisper-large-v3's (and -large-v3-turbo's) generation_config.json.
HUB_SUPPRESS_TOKENS = [
    1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93, 359,
    503, 522, 542, 873, 893, 902, 918, 922, 931, 1350, 1853, 1982, 2460, 2627, 3246, 3253, 3268,
    3536, 3846, 3961, 4183, 4667, 6585, 6647, 7273, 9061, 9383, 10428, 10929, 11938, 12033,
    12331, 12562, 13793, 14157, 14635, 15265, 15618, 16553, 16604, 18362, 18956, 20075, 21675,
    22520, 26130, 26161, 26435, 28279, 29464, 31650, 32302, 32470, 36865, 42863, 47425, 49870,
    50254, 50258, 50359, 50360, 50361, 50362, 50363,
]  # fmt: skip
# `alignment_heads` of openai/whisper-large-v3-turbo's generation_config.json.
TURBO_ALIGNMENT_HEADS = [[2, 4], [2, 11], [3, 3], [3, 6], [3, 11], [3, 14]]

MODEL_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture(scope="module")
def tokenizer() -> WhisperTokenizerFast:
    return build_whisper_tokenizer()


@pytest.fixture(scope="module")
def encoding() -> tiktoken.Encoding:
    ranks = load_tiktoken_ranks(DEFAULT_TIKTOKEN_PATH)
    return tiktoken.Encoding(
        name="whisper-multilingual",
        pat_str=WHISPER_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={},
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny") / "whisper-tiny-random")


@pytest.fixture(scope="module")
def turbo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """large-v3-turbo's layers, heads and mels at a test-friendly width."""
    out = tmp_path_factory.mktemp("turbo") / "turbo-narrow"
    return build_published_shape(out, "large-v3-turbo", d_model=80, ffn_dim=320)


@pytest.fixture
def audio() -> np.ndarray:
    """Two seconds of quiet noise at 16 kHz."""
    return (np.random.default_rng(0).standard_normal(32000) * 0.1).astype(np.float32)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
def test_encodes_exactly_like_tiktoken(
    tokenizer: WhisperTokenizerFast, encoding: tiktoken.Encoding, text: str
) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids == encoding.encode(text)
    assert tokenizer.decode(ids) == text
    assert encoding.decode(ids) == text


def test_chinese_is_not_byte_soup(tokenizer: WhisperTokenizerFast) -> None:
    # Merges really are applied: common Chinese words take fewer tokens than their UTF-8 bytes.
    text = "今天天气很好"
    assert len(tokenizer.encode(text, add_special_tokens=False)) < len(text.encode("utf-8")) // 2


def test_special_token_ids_match_large_v3(tokenizer: WhisperTokenizerFast) -> None:
    assert len(tokenizer) == 51866
    assert {tok: tokenizer.convert_tokens_to_ids(tok) for tok in EXPECTED_IDS} == EXPECTED_IDS
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 50257
    assert tokenizer.bos_token == tokenizer.unk_token == "<|endoftext|>"
    assert tokenizer.convert_ids_to_tokens(50256) == ""


def test_special_tokens_are_not_split(tokenizer: WhisperTokenizerFast) -> None:
    ids = tokenizer.encode("<|zh|><|0.00|>你好<|endoftext|>", add_special_tokens=False)
    assert ids[:2] == [50260, 50365]
    assert ids[-1] == 50257


def test_prefix_tokens_for_chinese_transcription(tokenizer: WhisperTokenizerFast) -> None:
    tokenizer.set_prefix_tokens(language="chinese", task="transcribe")
    try:
        ids = tokenizer.encode("你好")
    finally:
        tokenizer.language = tokenizer.task = None
        tokenizer.set_prefix_tokens()
    assert ids[:4] == [50258, 50260, 50360, 50364]
    assert ids[-1] == 50257
    assert tokenizer.decode(ids, skip_special_tokens=True) == "你好"


def test_timestamps_are_filtered_when_decoding(tokenizer: WhisperTokenizerFast) -> None:
    ids = [50258, 50260, 50360, 50365, *tokenizer.encode("你好", add_special_tokens=False), 50415]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "你好"
    assert "<|1.00|>" in tokenizer.decode(ids, decode_with_timestamps=True)


def test_malformed_tiktoken_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nIg== 2\n", encoding="ascii")
    with pytest.raises(WhisperforgeError, match="contiguous"):
        build_whisper_tokenizer(bad)
    bad.write_text("IQ== zero\n", encoding="ascii")
    with pytest.raises(WhisperforgeError, match=r"bad\.tiktoken:1"):
        load_tiktoken_ranks(bad)


# --------------------------------------------------------------------------------------------
# Model directory
# --------------------------------------------------------------------------------------------


def test_model_dir_contents(model_dir: Path) -> None:
    assert {p.name for p in model_dir.iterdir()} == MODEL_FILES
    assert not [p for p in model_dir.parent.iterdir() if p != model_dir]  # no temp leftovers
    config = json.loads((model_dir / "config.json").read_text())
    assert config["vocab_size"] == 51866
    assert config["max_source_positions"] == 1500
    assert config["max_target_positions"] == 448
    assert config["decoder_start_token_id"] == 50258
    assert config["bos_token_id"] == config["eos_token_id"] == config["pad_token_id"] == 50257
    assert config["d_model"] == 96
    assert json.loads((model_dir / "preprocessor_config.json").read_text())["feature_size"] == 80


def test_generation_config_is_complete(model_dir: Path) -> None:
    gen = json.loads((model_dir / "generation_config.json").read_text())
    assert gen["is_multilingual"] is True
    assert gen["max_length"] == 448
    assert gen["forced_decoder_ids"] is None
    assert gen["decoder_start_token_id"] == 50258
    assert gen["no_timestamps_token_id"] == 50364
    assert gen["task_to_id"] == {"translate": 50359, "transcribe": 50360}
    assert len(gen["lang_to_id"]) == 100
    assert gen["lang_to_id"]["<|zh|>"] == 50260
    assert sorted(gen["lang_to_id"].values()) == list(range(50259, 50359))
    assert gen["alignment_heads"] == [[1, h] for h in range(4)]
    assert gen["begin_suppress_tokens"] == [220, 50257]
    assert gen["suppress_tokens"] == HUB_SUPPRESS_TOKENS


def test_suppress_tokens_are_computed_like_the_hub_list(tokenizer: WhisperTokenizerFast) -> None:
    assert suppress_tokens(tokenizer) == HUB_SUPPRESS_TOKENS


def test_hf_suppresses_what_faster_whisper_suppresses(model_dir: Path) -> None:
    # faster-whisper ignores the config list and derives its own; HF generate reads the config
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens
    from tokenizers import Tokenizer as HFTokenizer

    fw = Tokenizer(
        HFTokenizer.from_file(str(model_dir / "tokenizer.json")),
        multilingual=True,
        task="transcribe",
        language="zh",
    )
    gen = json.loads((model_dir / "generation_config.json").read_text())
    assert list(get_suppressed_tokens(fw, [-1])) == gen["suppress_tokens"]


def test_hf_loads_and_generates_chinese(
    model_dir: Path, audio: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = WhisperForConditionalGeneration.from_pretrained(model_dir)
    processor = WhisperProcessor.from_pretrained(model_dir)
    assert len(processor.tokenizer) == 51866
    assert processor.tokenizer.encode("今天", add_special_tokens=False) == (
        build_whisper_tokenizer().encode("今天", add_special_tokens=False)
    )
    features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features
    assert features.shape == (1, 80, 3000)
    with torch.no_grad():
        out = model.generate(features, language="zh", task="transcribe", max_new_tokens=5)
    assert out.shape[0] == 1
    assert 1 <= out.shape[1] <= 5 + 4
    assert int(out.max()) < 51866
    assert isinstance(processor.batch_decode(out, skip_special_tokens=True)[0], str)


def test_converts_to_ctranslate2_and_runs_in_faster_whisper(
    model_dir: Path, audio: np.ndarray, tmp_path: Path
) -> None:
    from faster_whisper import WhisperModel

    ct2_dir = tmp_path / "ct2"
    converter = ctranslate2.converters.TransformersConverter(
        str(model_dir), copy_files=["tokenizer.json", "preprocessor_config.json"]
    )
    converter.convert(str(ct2_dir), quantization="float16")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    assert len(ct2_config["lang_ids"]) == 100
    assert len(json.loads((ct2_dir / "vocabulary.json").read_text())) == 51866

    model = WhisperModel(str(ct2_dir), device="cpu", compute_type="default")
    assert model.model.is_multilingual is True
    segments, info = model.transcribe(
        audio,
        language="zh",
        temperature=0.0,
        without_timestamps=True,
        condition_on_previous_text=False,
        max_new_tokens=8,
    )
    segments = list(segments)
    assert info.language == "zh"
    assert all(isinstance(s.text, str) for s in segments)


# --------------------------------------------------------------------------------------------
# Build behaviour
# --------------------------------------------------------------------------------------------


def test_build_is_deterministic_for_a_seed(model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_whisper(tmp_path / "again", seed=0)
    other = build_tiny_whisper(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "generation_config.json", "tokenizer.json"):
        assert _sha256(again / name) == _sha256(model_dir / name)
    assert _sha256(other / "model.safetensors") != _sha256(model_dir / "model.safetensors")


def test_failed_build_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(target: Path, *args: object) -> None:
        (target / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tinymodel, "_write_model_dir", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        build_tiny_whisper(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_rejects_heads_not_dividing_d_model(tmp_path: Path) -> None:
    with pytest.raises(WhisperforgeError, match="divisible"):
        build_tiny_whisper(tmp_path / "out", d_model=90, attention_heads=4)
    assert not (tmp_path / "out").exists()


def test_rejects_alignment_heads_outside_the_decoder(tmp_path: Path) -> None:
    with pytest.raises(WhisperforgeError, match=r"alignment head \(2, 0\)"):
        build_tiny_whisper(tmp_path / "out", alignment_heads=[(2, 0)])
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Published shapes
# --------------------------------------------------------------------------------------------


def test_published_shape_table() -> None:
    assert {"tiny", "small", "large-v3", "large-v3-turbo"} <= set(PUBLISHED_SHAPES)
    turbo = PUBLISHED_SHAPES["large-v3-turbo"]
    assert (turbo.d_model, turbo.encoder_layers, turbo.decoder_layers) == (1280, 32, 4)
    assert (turbo.attention_heads, turbo.ffn_dim, turbo.num_mel_bins) == (20, 5120, 128)
    assert [list(pair) for pair in turbo.alignment_heads] == TURBO_ALIGNMENT_HEADS
    small = PUBLISHED_SHAPES["small"]
    assert (small.d_model, small.encoder_layers, small.decoder_layers) == (768, 12, 12)
    assert (small.attention_heads, small.ffn_dim, small.num_mel_bins) == (12, 3072, 80)
    assert small.alignment_heads[:3] == ((5, 3), (5, 9), (8, 0))
    for name, shape in PUBLISHED_SHAPES.items():
        assert shape.d_model % shape.attention_heads == 0, name
        assert shape.ffn_dim == 4 * shape.d_model, name
        for layer, head in shape.alignment_heads:
            assert 0 <= layer < shape.decoder_layers and 0 <= head < shape.attention_heads, name


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("large-v3-turbo", 800e6, 820e6), ("small", 235e6, 250e6), ("large-v3", 1.53e9, 1.56e9)],
)
def test_full_width_parameter_count_without_weights(
    tokenizer: WhisperTokenizerFast, name: str, low: float, high: float
) -> None:
    # The real shape, counted on the meta device: no 3 GB of weights are allocated.
    config = whisper_config(PUBLISHED_SHAPES[name], tokenizer)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    assert low < sum(p.numel() for p in model.parameters()) < high


def test_narrowed_turbo_config_json(turbo_dir: Path) -> None:
    assert {p.name for p in turbo_dir.iterdir()} == MODEL_FILES | {SHAPE_FILE}
    config = json.loads((turbo_dir / "config.json").read_text())
    assert config["d_model"] == 80
    assert config["encoder_ffn_dim"] == config["decoder_ffn_dim"] == 320
    assert (config["encoder_layers"], config["decoder_layers"]) == (32, 4)
    assert config["encoder_attention_heads"] == config["decoder_attention_heads"] == 20
    assert config["num_mel_bins"] == 128
    assert config["vocab_size"] == 51866
    assert json.loads((turbo_dir / "preprocessor_config.json").read_text())["feature_size"] == 128
    assert json.loads((turbo_dir / SHAPE_FILE).read_text()) == {
        "shape": "large-v3-turbo",
        "narrowed": True,
        "d_model": 80,
        "ffn_dim": 320,
    }


def test_narrowed_turbo_generation_config_is_the_hub_one(turbo_dir: Path) -> None:
    gen = json.loads((turbo_dir / "generation_config.json").read_text())
    assert gen["alignment_heads"] == TURBO_ALIGNMENT_HEADS
    assert gen["lang_to_id"]["<|yue|>"] == 50358
    assert len(gen["lang_to_id"]) == 100
    assert gen["suppress_tokens"] == HUB_SUPPRESS_TOKENS
    assert gen["begin_suppress_tokens"] == [220, 50257]
    assert gen["no_timestamps_token_id"] == 50364


def test_narrowed_turbo_loads_and_has_its_alignment_heads(
    turbo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short stand-in encoder output keeps this fast (32 layers x 1500 frames take seconds);
    # the alignment heads must index real cross-attention heads of the loaded decoder.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = WhisperForConditionalGeneration.from_pretrained(turbo_dir, attn_implementation="eager")
    assert model.model.encoder.conv1.in_channels == 128
    assert len(model.model.encoder.layers) == 32
    encoder_out = torch.randn(1, 20, 80)
    with torch.no_grad():
        out = model(
            encoder_outputs=(encoder_out,),
            decoder_input_ids=torch.tensor([[50258, 50260, 50360, 50364]]),
            output_attentions=True,
        )
    assert out.logits.shape == (1, 4, 51866)
    assert len(out.cross_attentions) == 4
    for layer, head in model.generation_config.alignment_heads:
        weights = out.cross_attentions[layer][0, head]
        assert weights.shape == (4, 20)
        assert torch.allclose(weights.sum(-1), torch.ones(4))


def test_published_shape_narrowing() -> None:
    turbo = PUBLISHED_SHAPES["large-v3-turbo"]
    assert published_shape("large-v3-turbo") is turbo
    narrow = published_shape("large-v3-turbo", d_model=160)
    assert (narrow.d_model, narrow.ffn_dim) == (160, 640)  # Whisper's 4 x d_model
    assert narrow.alignment_heads == turbo.alignment_heads
    assert narrow.decoder_layers == turbo.decoder_layers


def test_narrowing_to_a_width_the_heads_cannot_split(tmp_path: Path) -> None:
    with pytest.raises(WhisperforgeError) as excinfo:
        build_published_shape(tmp_path / "out", "large-v3-turbo", d_model=90)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message == "large-v3-turbo: d_model 90 is not divisible by its 20 attention heads"
    assert not (tmp_path / "out").exists()


def test_unknown_shape_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(WhisperforgeError, match=r"'large-v4'.*large-v3-turbo") as excinfo:
        build_published_shape(tmp_path / "out", "large-v4")
    assert "\n" not in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []
