"""Corpora read through the field's loaders, through the real rules: an audiofolder (the `hf`
kind) and a lhotse RecordingSet + SupervisionSet, both made from demo AISHELL wavs, become the
manifests and stats a run's mix, the evaluation and the summary read."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from helpers import ROOT, copy_workflow, jobs_planned, snakemake

HF = "results/manifests/corpora/af"
LH = "results/manifests/corpora/lh"


def demo_wavs(n: int) -> list[tuple[str, str, bytes, str]]:
    """The first n (utterance id, speaker, wav bytes, word-segmented text) of the demo AISHELL."""
    found = []
    with tarfile.open(ROOT / "demo/data_aishell.tgz") as demo:
        transcript = demo.extractfile("data_aishell/transcript/aishell_transcript_v0.8.txt")
        texts = dict(line.split(" ", 1) for line in transcript.read().decode().splitlines())
        for member in demo.getmembers():
            if not member.name.endswith(".tar.gz") or len(found) >= n:
                continue
            with tarfile.open(fileobj=io.BytesIO(demo.extractfile(member).read())) as tar:
                for wav in sorted(tar.getmembers(), key=lambda m: m.name):
                    utt = Path(wav.name).stem
                    if wav.name.endswith(".wav") and utt in texts and len(found) < n:
                        speaker = Path(member.name).name.removesuffix(".tar.gz")
                        found.append((utt, speaker, tar.extractfile(wav).read(), texts[utt]))
    return found


def make_audiofolder(folder: Path, wavs: list) -> None:
    """12 train, 4 validation, 4 test rows, metadata.csv with file_name,sentence,speaker."""
    for split, part in (("train", wavs[:12]), ("validation", wavs[12:16]), ("test", wavs[16:20])):
        (folder / split).mkdir(parents=True)
        rows = ["file_name,sentence,speaker"]
        for utt, speaker, data, text in part:
            (folder / split / f"{utt}.wav").write_bytes(data)
            rows.append(f"{utt}.wav,{text.strip()},{speaker}")
        (folder / split / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def make_lhotse(folder: Path, wavs: list) -> dict:
    """Per split one long recording (its utterances with 0.5 s of silence between) with one
    supervision per utterance at its offset."""
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    folder.mkdir(parents=True)
    settings: dict = {"recordings": {}, "supervisions": {}}
    for split, part in (("train", wavs[:4]), ("dev", wavs[4:6]), ("test", wavs[6:8])):
        pieces, segments, at = [], [], 0.5
        for utt, speaker, data, text in part:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
            segments.append(
                SupervisionSegment(
                    utt, f"long-{split}", at, len(samples) / rate, text=text, speaker=speaker
                )
            )
            pieces += [np.zeros(rate // 2, np.float32), samples]
            at += 0.5 + len(samples) / rate
        wav = folder / f"long-{split}.wav"
        soundfile.write(str(wav), np.concatenate(pieces), 16000)
        recording = Recording.from_file(wav, recording_id=f"long-{split}")
        for kind, manifest in (
            ("recordings", RecordingSet.from_recordings([recording])),
            ("supervisions", SupervisionSet.from_segments(segments)),
        ):
            path = folder / f"{kind}_{split}.jsonl.gz"
            manifest.to_file(path)
            settings[kind][split] = str(path.relative_to(folder.parent))
    return settings


def corpora_workdir(root: Path) -> Path:
    """A workflow copy with the demo AISHELL, the corpora `af` (audiofolder) and `lh` (lhotse),
    and one run `mixed` of all three (config.yaml's own runs replaced)."""
    workdir = copy_workflow(root)
    wavs = demo_wavs(28)
    make_audiofolder(workdir / "my af", wavs[:20])
    corpora = {
        "af": {"hf": {"path": "my af", "speaker_column": "speaker"}},
        "lh": {"lhotse": make_lhotse(workdir / "my lhotse", wavs[20:28])},
    }
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["runs"] = {"mixed": {"mix": {"aishell": 1.0, "af": 1.0, "lh": 2.0}}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    mine = {
        "data": {"archive": "demo/data_aishell.tgz", "md5": None, "size": None, "corpora": corpora}
    }
    (workdir / "mine.yaml").write_text(yaml.safe_dump(mine, allow_unicode=True))
    return workdir


ARGS = ["--configfile", "config.yaml", "mine.yaml"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = corpora_workdir(tmp_path_factory.mktemp("imports"))
    snakemake(workdir, f"{HF}/stats.json", f"{LH}/stats.json", *ARGS)
    return workdir


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_import_rules_write_manifests_and_stats_per_split(workdir):
    stats = json.loads((workdir / HF / "stats.json").read_text())
    assert stats["utterances"] == {"train": 12, "dev": 4, "test": 4}
    assert stats["speakers"]["train"] >= 1 and stats["hours"]["train"] > 0
    train = read(workdir / HF / "train.jsonl")
    assert all(" " not in r["sentence"] and r["sentence"] for r in train)  # AISHELL's words joined
    for record in train:
        assert soundfile.info(str(workdir / record["audio"]["path"])).samplerate == 16000
        assert record["audio"]["path"].startswith("results/data/corpora/af/train/")
    lhotse = json.loads((workdir / LH / "stats.json").read_text())
    assert lhotse["utterances"] == {"train": 4, "dev": 2, "test": 2} and lhotse["kind"] == "lhotse"
    test = read(workdir / LH / "test.jsonl")
    assert test[0]["audio"]["start_time"] == 0.5
    assert {r["audio"]["path"] for r in test} == {str(workdir / "my lhotse/long-test.wav")}


def test_a_dry_run_plans_the_mixed_run_on_both_corpora_and_scores_their_test_splits(tmp_path):
    workdir = corpora_workdir(tmp_path / "wf")
    planned = jobs_planned(workdir, *ARGS)
    assert planned["import_hf_corpus"] == 1 and planned["import_lhotse_corpus"] == 1, planned
    assert planned["mix_run"] == 1 and planned["finetune"] == 1, planned
    proc = snakemake(workdir, "-n", "results/summary.md", *ARGS)
    for corpus in ("af", "lh"):
        assert f"results/eval/mixed/{corpus}/cer.json" in proc.stdout
        assert f"results/eval/base/{corpus}/cer.json" in proc.stdout
    assert "fetch_hf_corpus" not in planned  # a local folder is read in place


def test_a_hub_id_is_fetched_once_and_offline_says_which_endpoint_in_one_line(tmp_path):
    workdir = corpora_workdir(tmp_path / "wf")
    hub = {"data": {"corpora": {"af": {"hf": {"path": "someone/zh-speech", "revision": "v1"}}}}}
    (workdir / "hub.yaml").write_text(yaml.safe_dump(hub))
    assert jobs_planned(workdir, f"{HF}/stats.json", *ARGS, "hub.yaml")["fetch_hf_corpus"] == 1
    proc = snakemake(workdir, f"{HF}/stats.json", *ARGS, "hub.yaml", check=False)
    assert proc.returncode != 0
    assert (
        "config data.corpora.af.hf.path: cannot fetch dataset someone/zh-speech@v1 from "
        "https://huggingface.co (" in proc.stderr
    ), proc.stderr[-3000:]
    assert not (workdir / "resources/datasets/af").exists()


@pytest.mark.e2e
def test_a_run_mixing_aishell_an_audiofolder_and_lhotse_trains_and_every_test_split_is_scored(
    tmp_path, tiny
):
    import shutil

    workdir = corpora_workdir(tmp_path / "wf")
    shutil.copytree(tiny, workdir / "tiny model")
    short = {
        "model": {"base": "./tiny model", "revision": None},
        "train": {
            "device": "cpu",
            "max_steps": 2,
            "eval_steps": 2,
            "save_steps": 2,
            "logging_steps": 1,
            "warmup_steps": 0,
            "per_device_train_batch_size": 4,
            "dataloader_num_workers": 0,
            "gradient_checkpointing": False,
        },
        "export": {"quantizations": ["int8"]},
        "eval": {"speed_utterances": 1},
    }
    (workdir / "short.yaml").write_text(yaml.safe_dump(short))
    start = time.monotonic()
    snakemake(workdir, "results/summary.md", *ARGS, "short.yaml", "--resources", "gpu=1")
    print(f"mixed e2e: {time.monotonic() - start:.0f} s")
    mix = json.loads((workdir / "results/manifests/runs/mixed/mix.json").read_text())
    assert {"aishell", "af", "lh"} <= set(json.dumps(mix) and mix.get("corpora", mix)), mix
    summary = (workdir / "results/summary.md").read_text(encoding="utf-8")
    for corpus in ("af", "lh"):
        for model in ("base", "mixed"):
            assert json.loads((workdir / f"results/eval/{model}/{corpus}/cer.json").read_text())
        assert corpus in summary
