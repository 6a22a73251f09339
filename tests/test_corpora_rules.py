"""The own-recordings corpus stage through the real rules, on a tiny local base model: file names
users really have, a split changed without re-checking a recording, bad folders refused early."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile
import yaml
from helpers import copy_workflow, jobs_planned, snakemake, speech_like

ODD = ["讲座 第1课 (final)", "it's a&b [v2] 100%", "cost $5; x"]
CORPUS = "results/manifests/corpora/lec"


def srt(n: int) -> str:
    return "".join(
        f"{i + 1}\n00:00:{2 * i + 1:02d},000 --> 00:00:{2 * i + 2:02d},500\n第{i}句 话\n\n"
        for i in range(n)
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("corpora"))
    lectures = workdir / "my lectures"
    lectures.mkdir()
    for k, name in enumerate(ODD):
        soundfile.write(str(lectures / f"{name}.flac"), speech_like(10.0, seed=k), 16000)
        (lectures / f"{name}.srt").write_text(srt(4), encoding="utf-8")
    shutil.copytree(tiny, workdir / "tiny model")
    config = {
        "model": {"base": "./tiny model", "revision": None},
        "train": {"device": "cpu"},
        "data": {"corpora": {"lec": {"recordings": "my lectures", "test": [ODD[0]], "dev": []}}},
    }
    (workdir / "mine.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    snakemake(
        workdir, f"{CORPUS}/stats.json", f"{CORPUS}/train.jsonl", f"{CORPUS}/test.jsonl", *ARGS
    )
    return workdir


ARGS = ["--configfile", "config.yaml", "mine.yaml"]


def test_recordings_with_odd_names_get_every_output(workdir):
    stats = json.loads((workdir / f"{CORPUS}/stats.json").read_text())
    assert sorted(stats["recordings"]) == sorted(ODD)
    for name in ODD:
        assert (workdir / f"{CORPUS}/{name}.rejected.srt").is_file(), name
        assert (workdir / f"results/data/corpora/lec/{name}.wav").is_file(), name
        assert stats["recordings"][name]["cues"] == 4
    assert stats["recordings"][ODD[0]]["split"] == "test"
    rows = (workdir / f"{CORPUS}/report.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 4 * len(ODD)
    test = [
        json.loads(line) for line in (workdir / f"{CORPUS}/test.jsonl").read_text().splitlines()
    ]
    assert {r["recording"] for r in test} <= {ODD[0]}


def test_moving_a_recording_to_another_split_rechecks_nothing(workdir):
    (workdir / "split.yaml").write_text(
        yaml.safe_dump({"data": {"corpora": {"lec": {"test": [ODD[1]]}}}}, allow_unicode=True)
    )
    planned = jobs_planned(
        workdir, f"{CORPUS}/stats.json", f"{CORPUS}/train.jsonl", *ARGS, "split.yaml"
    )
    assert "corpus_recording" not in planned, planned
    assert planned.get("corpus_split") == 1 and planned.get("corpus_report") == 1, planned


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("lonely.mp4", "lonely.mp4: recording without a subtitle file"),
        ("orphan.srt", "orphan.srt: subtitle file without a recording of that name"),
    ],
)
def test_a_folder_with_an_unpaired_file_stops_before_any_job(workdir, tmp_path, extra, message):
    folder = tmp_path / "bad"
    shutil.copytree(workdir / "my lectures", folder)
    (folder / extra).write_bytes(b"x")
    (workdir / "bad.yaml").write_text(
        yaml.safe_dump({"data": {"corpora": {"lec": {"recordings": str(folder)}}}})
    )
    proc = snakemake(workdir, "-n", f"{CORPUS}/stats.json", *ARGS, "bad.yaml", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_a_bilingual_utf16_ass_file_keeps_the_cues_its_utf8_srt_keeps(workdir):
    from helpers import bilingual_ass

    name = ODD[1]
    folder = workdir / "enc lectures"
    folder.mkdir()
    shutil.copy(workdir / "my lectures" / f"{name}.flac", folder)
    english = [f"Sentence {i}" for i in range(4)]
    (folder / f"{name}.ass").write_bytes(bilingual_ass(srt(4), english).encode("utf-16"))
    (workdir / "enc.yaml").write_text(
        yaml.safe_dump(
            {"data": {"corpora": {"enc": {"recordings": "enc lectures", "test": [], "dev": []}}}}
        )
    )
    out = {
        corpus: f"results/manifests/corpora/{corpus}/recordings/{name}" for corpus in ("lec", "enc")
    }
    snakemake(workdir, f"{out['enc']}.tsv", *ARGS, "enc.yaml")  # the one recording's job only

    def kept(corpus: str) -> tuple[list, list]:
        rows = (workdir / f"{out[corpus]}.tsv").read_text(encoding="utf-8").splitlines()
        cues = [row.split("\t")[1:4] + row.split("\t")[5:] for row in rows]  # not the raw text
        windows = [
            json.loads(line) for line in (workdir / f"{out[corpus]}.jsonl").read_text().splitlines()
        ]
        return cues, [(w["audio"]["start_time"], w["sentence"], w["sentences"]) for w in windows]

    assert kept("enc") == kept("lec")
    facts = json.loads((workdir / f"{out['enc']}.json").read_text(encoding="utf-8"))
    assert facts["subtitle_encoding"] == "utf-16le-bom"
    assert (
        facts["text_changes"]["translation_line"] == 4 and facts["text_changes"]["sign_style"] == 1
    )
