"""Tests for the shipped demo archives (demo/*.tgz) and whisperforge.demo.demodata's generator."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import soundfile as sf

from whisperforge.core.errors import WhisperforgeError
from whisperforge.demo.demodata import (
    BASE_SPEAKERS,
    DEMO_ARCHIVES,
    ORPHAN_UTT_NUMBER,
    SPLIT_RANGES,
    TARGET_SPEAKERS,
    TRANSCRIPT_MEMBER,
    Speaker,
    Voice,
    build_aishell_archive,
    require_tools,
    spoken_text,
)

DEMO = Path(__file__).resolve().parents[1] / "demo"
MAX_BYTES = 5_000_000  # committed to git: keep each archive under 5 MB
SPEAKER_TAR = re.compile(r"data_aishell/wav/(S\d{4})\.tar\.gz")
WAV_MEMBER = re.compile(r"(train|dev|test)/(S\d{4})/(BAC009(S\d{4})W\d{4})\.wav")
TRANSCRIPT_LINE = re.compile(r"(BAC009S\d{4}W\d{4})((?: [^ ]+)+)")


@dataclass
class Archive:
    """One demo archive, read fully into memory."""

    path: Path
    speaker_tars: list[str] = field(default_factory=list)
    transcript: dict[str, str] = field(default_factory=dict)  # utt id -> words
    wavs: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # utt -> split, spk, wav


def read_archive(path: Path) -> Archive:
    """Read a demo tgz, asserting the AISHELL-1 member layout on the way."""
    archive = Archive(path)
    with tarfile.open(path, "r:gz") as outer:
        for member in outer:
            if member.isdir():
                assert member.name in {
                    "data_aishell",
                    "data_aishell/transcript",
                    "data_aishell/wav",
                }
                continue
            assert member.isfile(), member.name
            data = outer.extractfile(member).read()
            if member.name == TRANSCRIPT_MEMBER:
                for line in data.decode("utf-8").splitlines():
                    match = TRANSCRIPT_LINE.fullmatch(line)
                    assert match, f"malformed transcript line {line!r}"
                    assert match.group(1) not in archive.transcript, f"duplicate {match.group(1)}"
                    archive.transcript[match.group(1)] = match.group(2).strip()
                continue
            match = SPEAKER_TAR.fullmatch(member.name)
            assert match, f"unexpected member {member.name!r}"
            speaker = match.group(1)
            archive.speaker_tars.append(speaker)
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as inner:
                for wav in inner:
                    if wav.isdir():
                        assert re.fullmatch(rf"(train|dev|test)(/{speaker})?", wav.name)
                        continue
                    found = WAV_MEMBER.fullmatch(wav.name)
                    assert found, f"{member.name}: unexpected member {wav.name!r}"
                    split, spk, utt, utt_spk = found.groups()
                    assert spk == speaker == utt_spk, f"{member.name}: {wav.name} misplaced"
                    assert utt not in archive.wavs, f"duplicate wav {utt}"
                    archive.wavs[utt] = (split, spk, inner.extractfile(wav).read())
    assert archive.transcript, f"{path}: no transcript"
    assert archive.speaker_tars, f"{path}: no speaker tars"
    return archive


@pytest.fixture(scope="module", params=sorted(DEMO_ARCHIVES))
def archive(request: pytest.FixtureRequest) -> Archive:
    return read_archive(DEMO / request.param)


@pytest.fixture(scope="module")
def archives() -> dict[str, Archive]:
    return {name: read_archive(DEMO / name) for name in DEMO_ARCHIVES}


def speaker_splits(archive: Archive) -> dict[str, str]:
    """Speaker -> split, asserting each speaker belongs to exactly one split."""
    splits: dict[str, set[str]] = {}
    for split, spk, _ in archive.wavs.values():
        splits.setdefault(spk, set()).add(split)
    for spk, seen in splits.items():
        assert len(seen) == 1, f"{archive.path.name}: speaker {spk} in splits {seen}"
    return {spk: seen.pop() for spk, seen in splits.items()}


def test_archive_size_under_limit(archive: Archive) -> None:
    assert archive.path.stat().st_size < MAX_BYTES


def test_layout_speakers_and_splits(archive: Archive) -> None:
    assert sorted(archive.speaker_tars) == sorted(set(archive.speaker_tars))
    splits = speaker_splits(archive)
    assert sorted(splits) == sorted(archive.speaker_tars)  # every speaker tar holds wavs
    for spk, split in splits.items():
        low, high = SPLIT_RANGES[split]
        assert low <= int(spk[1:]) <= high, f"{spk} is not a real AISHELL {split} speaker"
    # The shipped archive matches the speaker table it is generated from (regenerate if not).
    table = {s.name: s for s in DEMO_ARCHIVES[archive.path.name]}
    assert splits == {name: s.split for name, s in table.items()}
    expected = sum(len(s.sentences) for s in table.values())
    assert len(archive.transcript) == expected


def test_every_wav_is_16k_mono_pcm16_and_1_to_5_seconds(archive: Archive) -> None:
    assert archive.wavs
    for utt, (_, _, data) in archive.wavs.items():
        info = sf.info(io.BytesIO(data))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), utt
        assert 1.0 <= info.duration <= 5.0, f"{utt}: {info.duration:.2f} s"


def test_transcript_ids_have_wavs_except_deliberate_orphans(archive: Archive) -> None:
    missing = sorted(set(archive.transcript) - set(archive.wavs))
    assert not missing, f"transcript ids without a wav: {missing}"
    orphans = sorted(set(archive.wavs) - set(archive.transcript))
    table = DEMO_ARCHIVES[archive.path.name]
    expected = sorted(s.utt_id(ORPHAN_UTT_NUMBER + k) for s in table for k in range(s.orphans))
    assert orphans == expected
    assert all(archive.wavs[utt][0] == "train" for utt in orphans)


def test_transcript_words_are_single_spaced_hanzi_with_some_full_width(
    archives: dict[str, Archive],
) -> None:
    target = archives["data_aishell.tgz"]
    assert any(re.search(r"[\uff21-\uff5a]", words) for words in target.transcript.values())
    for archive in archives.values():
        for utt, words in archive.transcript.items():
            assert re.fullmatch(
                r"[\u4e00-\u9fff\uff21-\uff5a]+( [\u4e00-\u9fff\uff21-\uff5a]+)*", words
            ), f"{utt}: {words!r}"


def test_target_and_base_share_sentences_not_speakers_or_voices(
    archives: dict[str, Archive],
) -> None:
    target, base = archives["data_aishell.tgz"], archives["base_domain.tgz"]
    target_splits, base_splits = speaker_splits(target), speaker_splits(base)
    assert set(target_splits.values()) == {"train", "dev", "test"}
    assert set(base_splits.values()) == {"train", "dev"}
    assert not set(target_splits) & set(base_splits)
    # Voices: no variant is used in both archives; target test voices are unseen in target train.
    assert not {s.voice.variant for s in TARGET_SPEAKERS} & {s.voice.variant for s in BASE_SPEAKERS}
    voices = {
        split: {s.voice for s in TARGET_SPEAKERS if s.split == split}
        for split in target_splits.values()
    }
    assert not voices["test"] & voices["train"]

    # Sentences: every target test sentence is read in target train and in base train.
    def sentences(archive: Archive, splits: dict[str, str], split: str) -> set[str]:
        return {w for u, w in archive.transcript.items() if splits[u[6:11]] == split}

    test_sentences = sentences(target, target_splits, "test")
    assert test_sentences <= sentences(target, target_splits, "train")
    assert test_sentences <= sentences(base, base_splits, "train")


def test_spoken_text_spells_full_width_letters() -> None:
    assert spoken_text("五月 ｃｐｉ 同比 上涨") == "五月 C P I 同比上涨"
    assert spoken_text("ａ股 三 大") == "A 股三大"


def test_missing_tools_is_a_whisperforge_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(WhisperforgeError, match="espeak-ng and sox"):
        require_tools()
    with pytest.raises(WhisperforgeError, match="espeak-ng"):
        build_aishell_archive(tmp_path / "x.tgz", TARGET_SPEAKERS[:1])


def test_regenerating_a_tiny_archive_is_deterministic(tmp_path: Path) -> None:
    speakers = [Speaker(2, "train", Voice("f1", pitch=72, speed=195), (3,), orphans=1)]
    first = build_aishell_archive(tmp_path / "a" / "data_aishell.tgz", speakers)
    second = build_aishell_archive(tmp_path / "b" / "data_aishell.tgz", speakers)
    md5 = [hashlib.md5(Path(s.path).read_bytes()).hexdigest() for s in (first, second)]
    assert md5[0] == md5[1] == first.md5 == second.md5
    tiny = read_archive(Path(first.path))
    assert tiny.transcript == {"BAC009S0002W0124": "ａ股 三 大 指数 集体 收涨"}
    assert sorted(tiny.wavs) == ["BAC009S0002W0124", "BAC009S0002W0901"]
    assert first.utterances == {"train": 1, "dev": 0, "test": 0} and first.orphans == 1
    with tarfile.open(first.path, "r:gz") as tar:
        assert all(m.mtime == 0 and m.uid == m.gid == 0 for m in tar.getmembers())
