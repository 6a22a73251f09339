"""The AISHELL data stage as functions: extraction, manifests, and every bad-input path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from helpers import SMALL_TRANSCRIPT, SMALL_UTTERANCES, filters, make_archive, wav_bytes

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.manifest import read_manifest
from whisperforge.data.aishell import build_manifests, extract_archive, read_wav_index


def extract(archive: Path, out: Path, threads: int = 2):
    return extract_archive(
        archive, out / "wav", out / "transcript.txt", out / "wavs.tsv", threads=threads
    )


def assert_no_outputs(out: Path) -> None:
    leftovers = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert leftovers == [], f"partial outputs left behind: {leftovers}"


def test_extract_indexes_every_wav_with_header_duration(small_archive, tmp_path):
    counts = extract(small_archive, tmp_path / "x")
    assert counts == {"train": 3, "dev": 1, "test": 2}
    entries = {e.utt_id: e for e in read_wav_index(tmp_path / "x" / "wavs.tsv")}
    assert entries["BAC009S0002W0122"].duration == pytest.approx(2.0)
    assert entries["BAC009S0764W0121"].split == "test"
    assert Path(entries["BAC009S0764W0121"].path).is_file()


def test_manifests_fields_filters_and_fullwidth(small_archive, tmp_path):
    extract(small_archive, tmp_path / "x")
    stats = build_manifests(
        tmp_path / "x/transcript.txt", tmp_path / "x/wavs.tsv", tmp_path / "m", filters=filters()
    )
    assert stats["utterances"] == {"train": 2, "dev": 1, "test": 1}
    assert stats["skipped"] == {"no_transcript": 1, "too_short": 1}
    train = read_manifest(tmp_path / "m/train.jsonl")
    by_id = {r["id"]: r for r in train}
    # spaces removed, full-width latin mapped to ASCII
    assert by_id["BAC009S0002W0122"]["sentence"] == "a股市场回暖"
    assert by_id["BAC009S0002W0121"]["sentence"] == "而对楼市成交"
    record = by_id["BAC009S0002W0121"]
    assert record["language"] == "Chinese"
    assert record["duration"] == 1.5
    assert record["sentences"] == [{"start": 0, "end": 1.5, "text": "而对楼市成交"}]


def test_train_on_dev_merges_dev_into_train(small_archive, tmp_path):
    extract(small_archive, tmp_path / "x")
    stats = build_manifests(
        tmp_path / "x/transcript.txt",
        tmp_path / "x/wavs.tsv",
        tmp_path / "m",
        filters=filters(),
        train_on_dev=True,
    )
    ids = [r["id"] for r in read_manifest(tmp_path / "m/train.jsonl")]
    assert "BAC009S0724W0121" in ids and stats["utterances"]["train"] == 3


def test_max_text_length_filter(small_archive, tmp_path):
    extract(small_archive, tmp_path / "x")
    stats = build_manifests(
        tmp_path / "x/transcript.txt",
        tmp_path / "x/wavs.tsv",
        tmp_path / "m",
        filters=filters(max_text_chars=5),
        required_splits=["dev"],
    )
    # 而对楼市成交, a股市场回暖 (train) and 经济增长放缓 (test) have 6 characters; 房价稳定 has 4
    assert stats["skipped"]["text_too_long"] == 3


def test_path_traversal_member_is_refused(tmp_path):
    archive = make_archive(
        tmp_path / "evil.tgz",
        SMALL_UTTERANCES,
        SMALL_TRANSCRIPT,
        extra_members={"../../etc/evil.txt": b"x"},
    )
    with pytest.raises(WhisperforgeError, match=r"evil\.tgz.*unsafe member path"):
        extract(archive, tmp_path / "x")
    assert_no_outputs(tmp_path / "x")


def test_absolute_member_in_speaker_tar_is_refused(tmp_path):
    import tarfile

    from helpers import add_bytes, speaker_tar

    archive = tmp_path / "abs.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        add_bytes(tar, "data_aishell/transcript/aishell_transcript_v0.8.txt", b"U1 a\n")
        add_bytes(tar, "data_aishell/wav/S0002.tar.gz", speaker_tar({"/tmp/x.wav": wav_bytes(1)}))
    with pytest.raises(WhisperforgeError, match=r"S0002\.tar\.gz.*unsafe member path '/tmp/x.wav'"):
        extract(archive, tmp_path / "x")
    assert_no_outputs(tmp_path / "x")


def test_truncated_archive_is_a_clear_error(small_archive, tmp_path):
    data = small_archive.read_bytes()
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WhisperforgeError, match=r"truncated\.tgz.*(corrupt|truncated)"):
        extract(truncated, tmp_path / "x")
    assert_no_outputs(tmp_path / "x")


def test_corrupt_speaker_tar_names_the_member(tmp_path):
    import tarfile

    from helpers import add_bytes

    archive = tmp_path / "bad.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        add_bytes(tar, "data_aishell/transcript/aishell_transcript_v0.8.txt", b"U1 a\n")
        add_bytes(tar, "data_aishell/wav/S0003.tar.gz", gzip.compress(b"not a tar")[:20])
    with pytest.raises(WhisperforgeError, match=r"S0003\.tar\.gz.*corrupt or truncated"):
        extract(archive, tmp_path / "x")
    assert_no_outputs(tmp_path / "x")


def test_missing_transcript_is_a_clear_error(tmp_path):
    archive = make_archive(tmp_path / "nt.tgz", SMALL_UTTERANCES, None)
    with pytest.raises(WhisperforgeError, match=r"nt\.tgz: no data_aishell/transcript/"):
        extract(archive, tmp_path / "x")
    assert_no_outputs(tmp_path / "x")


def test_transcript_line_without_text_names_the_line(small_archive, tmp_path):
    extract(small_archive, tmp_path / "x")
    transcript = tmp_path / "x/transcript.txt"
    transcript.write_text(SMALL_TRANSCRIPT + "BAC009S0002W0124\n", encoding="utf-8")
    with pytest.raises(WhisperforgeError, match=r"transcript\.txt:6: transcript line has no text"):
        build_manifests(transcript, tmp_path / "x/wavs.tsv", tmp_path / "m", filters=filters())
    assert_no_outputs(tmp_path / "m")


def test_bad_wav_format_errors_or_skips(tmp_path):
    archive = make_archive(
        tmp_path / "rate.tgz",
        SMALL_UTTERANCES,
        SMALL_TRANSCRIPT,
        wav_overrides={"BAC009S0002W0121": wav_bytes(1.5, rate=8000, channels=2)},
    )
    extract(archive, tmp_path / "x")
    args = (tmp_path / "x/transcript.txt", tmp_path / "x/wavs.tsv", tmp_path / "m")
    with pytest.raises(WhisperforgeError, match=r"BAC009S0002W0121\.wav: wav is 8000 Hz, 2 chan"):
        build_manifests(*args, filters=filters())
    assert_no_outputs(tmp_path / "m")
    stats = build_manifests(*args, filters=filters(bad_wav="skip"))
    assert stats["skipped"]["bad_format"] == 1
    assert stats["utterances"]["train"] == 1


def test_parallel_extraction_matches_serial(small_archive, tmp_path):
    extract(small_archive, tmp_path / "serial", threads=1)
    extract(small_archive, tmp_path / "parallel", threads=4)
    serial = (tmp_path / "serial/wavs.tsv").read_text().replace(str(tmp_path / "serial"), "X")
    parallel = (tmp_path / "parallel/wavs.tsv").read_text().replace(str(tmp_path / "parallel"), "X")
    assert serial == parallel


def test_stats_record_hours_and_speakers(small_archive, tmp_path):
    extract(small_archive, tmp_path / "x")
    build_manifests(
        tmp_path / "x/transcript.txt", tmp_path / "x/wavs.tsv", tmp_path / "m", filters=filters()
    )
    stats = json.loads((tmp_path / "m/stats.json").read_text())
    assert stats["hours"]["train"] == pytest.approx(3.5 / 3600, abs=1e-4)
    assert stats["speakers"] == {"train": 1, "dev": 1, "test": 1}
