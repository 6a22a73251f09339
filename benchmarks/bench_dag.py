"""DAG overhead: `snakemake -n` on an up-to-date real-size AISHELL-1 DAG vs the demo-size DAG.

    nice -n 10 python benchmarks/bench_dag.py --workdir /tmp/pytest-of-root/pytest-NN/demo0 \
        [--configfile config.yaml profiles/demo/demo.yaml fast.yaml] [--speakers 400] \
        [--utterances 141925] [--repeat 3] [--profile] [--json]

--workdir is a finished, up-to-date demo run (workflow files + results/ + .snakemake/), e.g.
the one tests/test_workflow.py builds. Its own workflow files are used (module digests are rule
params: another checkout's code would plan reruns); --configfile defaults to what that run used
(config.yaml profiles/demo/demo.yaml, plus fast.yaml when the directory has one).

The workdir is copied twice to a temp dir (mtimes and .snakemake metadata kept, locks left out):
  demo:  the copy as it is (the baseline)
  real:  the copy's data outputs rewritten at real AISHELL-1 size (400 speakers, 141,925 wavs:
         train 120,418 / dev 14,331 / test 7,176 in the directory() output of extract_aishell,
         hard links to demo wavs; transcript.txt, wavs.tsv and the train/dev/test manifests with
         141,600 lines in the run's own line format), every path under results/ and
         benchmarks/out/ (rule benchmark files count as outputs) set to one mtime so nothing is
         newer than its outputs.
Then `snakemake --version`, `snakemake -n` on demo and on real run in turn, one warm-up round and
N timed rounds (interleaved, so load drift on a shared machine hits all three alike); medians.
Each dry run must report nothing to do (a benchmark of a stale DAG is meaningless); otherwise
it exits naming the jobs planned. Prints both times, real/demo, the `snakemake --version` startup
floor, and whether the goal (< 5 s at real size) is met. --profile adds a cProfile of one
real-size dry run, split into phases (imports, CLI, parsing, DAG).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

GOAL_S = 5.0
CORPUS = "results/data/aishell"
WAV_DIR = f"{CORPUS}/wav"
MANIFESTS = "results/manifests"
OUTPUT_DIRS = ["results", "benchmarks/out"]
# AISHELL-1 (../shared/REFERENCE.md): wavs per split, lines with a transcript, speakers.
REAL_WAVS = {"train": 120_418, "dev": 14_331, "test": 7_176}  # 141,925
REAL_LINES = {"train": 120_098, "dev": 14_326, "test": 7_176}  # 141,600
REAL_SPEAKERS = {"train": 340, "dev": 40, "test": 20}
REAL_HOURS = {"train": 150.0, "dev": 18.1, "test": 10.0}
FIRST_SPEAKER = {"train": 2, "dev": 724, "test": 764}
FIRST_UTT = 121
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class Split:
    name: str
    speakers: list[str]
    wavs: int
    lines: int

    def utterances(self) -> Iterator[tuple[str, str, bool]]:
        """(speaker, utt_id, has_transcript): wavs spread evenly, the last `wavs - lines`
        of the split without a transcript."""
        per, extra = divmod(self.wavs, len(self.speakers))
        n = 0
        for i, speaker in enumerate(self.speakers):
            for w in range(per + (i < extra)):
                yield speaker, f"BAC009{speaker}W{FIRST_UTT + w:04d}", n < self.lines
                n += 1


def plan_splits(speakers: int, utterances: int) -> list[Split]:
    """Real AISHELL-1 proportions scaled to `speakers` and `utterances` (wavs)."""
    total_wavs = sum(REAL_WAVS.values())
    splits = []
    left_spk, left_wavs = speakers, utterances
    for name in ["test", "dev", "train"]:  # train takes the rounding remainder
        if name == "train":
            n_spk, wavs = left_spk, left_wavs
        else:
            n_spk = max(1, round(speakers * REAL_SPEAKERS[name] / sum(REAL_SPEAKERS.values())))
            wavs = max(n_spk, round(utterances * REAL_WAVS[name] / total_wavs))
        lines = round(wavs * REAL_LINES[name] / REAL_WAVS[name])
        ids = [f"S{FIRST_SPEAKER[name] + i:04d}" for i in range(n_spk)]
        splits.append(Split(name, ids, wavs, lines))
        left_spk, left_wavs = left_spk - n_spk, left_wavs - wavs
    if left_spk < 0 or splits[-1].wavs < len(splits[-1].speakers):
        sys.exit(f"too few speakers/utterances to fill train/dev/test: {speakers}/{utterances}")
    return splits[::-1]


def snakemake_cmd(configfiles: list[str], profile: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--workflow-profile",
        profile,
        "--configfile",
        *configfiles,
        *extra,
    ]


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV)
    seconds = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[2:])} failed ({proc.returncode}) in {cwd}:\n{out[-4000:]}")
    return seconds, out


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> count from a dry run's "job count" table (empty when nothing to do)."""
    counts: dict[str, int] = {}
    in_table = False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and parts[:1] == ["total"]:
            break
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def dry_run(cwd: Path, cmd: list[str], label: str) -> float:
    """Seconds of one `snakemake -n`, which must report nothing to do."""
    seconds, out = run(cmd, cwd)
    if "Nothing to be done" not in out:
        jobs = planned_jobs(out) or "(no job table; output tail below)"
        sys.exit(f"{label}: DAG not up to date, `snakemake -n` plans {jobs}\n{out[-3000:]}")
    return seconds


def interleaved_medians(contenders: dict[str, Callable[[], float]], repeat: int) -> dict:
    """Median of `repeat` rounds, each running every contender once (after one warm-up round):
    on a shared machine, load drifts hit all contenders alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for attempt in range(repeat + 1):
        for name, fn in contenders.items():
            seconds = fn()
            if attempt:
                times[name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}


def copy_workdir(src: Path, dest: Path) -> None:
    """The whole run, mtimes kept; lock files left out (a copy must not inherit a live lock)."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("locks", "__pycache__"))


def template_line(path: Path, skip_header: bool = False) -> tuple[str | None, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0] if skip_header else None
    body = lines[1:] if skip_header else lines
    if not body:
        sys.exit(f"{path} has no line to use as a template")
    return header, body[0]


def line_former(line: str, utt: str, speaker: str, split: str, path: str):
    """A function (utt, speaker, split, path) -> `line` with those four values swapped in."""
    if path not in line:
        sys.exit(f"template line does not hold its wav path {path!r}: {line[:200]}")
    marked = line.replace(path, "\0P").replace(utt, "\0U")
    for value, mark in ((speaker, "\0S"), (split, "\0T")):  # only as a whole field
        marked = re.sub(rf'(?<=["\t]){re.escape(value)}(?=["\t])', mark, marked)

    def form(new_utt: str, new_speaker: str, new_split: str, new_path: str) -> str:
        text = marked.replace("\0P", new_path).replace("\0U", new_utt)
        return text.replace("\0S", new_speaker).replace("\0T", new_split)

    return form


def seed_wav(work: Path) -> tuple[Path, dict[str, str]]:
    """A demo wav kept outside results/, and the template utterance it belongs to."""
    header, line = template_line(work / CORPUS / "wavs.tsv", skip_header=True)
    row = dict(zip((header or "").split("\t"), line.split("\t"), strict=False))
    needed = {"utt_id", "split", "speaker", "path"}
    if not needed <= row.keys():
        sys.exit(f"wavs.tsv header lacks {needed - row.keys()}: {header}")
    expected = f"{WAV_DIR}/{row['split']}/{row['speaker']}/{row['utt_id']}.wav"
    if row["path"] != expected:
        sys.exit(f"unexpected wav layout: {row['path']} (expected {expected})")
    seed = work / "bench-seed.wav"
    shutil.copyfile(work / row["path"], seed)
    return seed, row


def fill_wavs(work: Path, splits: list[Split], seed: Path) -> int:
    """The real-size tree under the directory() output: one copy per speaker, hard links."""
    wav_dir = work / WAV_DIR
    for child in wav_dir.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
    n = 0
    for split in splits:
        first_of: dict[str, Path] = {}
        for speaker, utt, _ in split.utterances():
            path = wav_dir / split.name / speaker / f"{utt}.wav"
            if speaker not in first_of:
                path.parent.mkdir(parents=True)
                shutil.copyfile(seed, path)
                first_of[speaker] = path
            else:
                try:
                    os.link(first_of[speaker], path)
                except OSError:
                    shutil.copyfile(seed, path)
            n += 1
    return n


def write_lines(path: Path, header: str | None, lines: Iterator[str]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as f:
        if header is not None:
            f.write(header + "\n")
        for line in lines:
            f.write(line + "\n")
            n += 1
    return n


def rewrite_tables(work: Path, splits: list[Split], tpl: dict[str, str]) -> dict[str, int]:
    """wavs.tsv, transcript.txt and the manifests at the new size, in the run's own format."""
    counts = {}
    old = (tpl["utt_id"], tpl["speaker"], tpl["split"], tpl["path"])

    def rows(only_transcribed: bool) -> Iterator[tuple[str, str, str, str]]:
        for split in splits:
            for speaker, utt, transcribed in split.utterances():
                if transcribed or not only_transcribed:
                    path = f"{WAV_DIR}/{split.name}/{speaker}/{utt}.wav"
                    yield utt, speaker, split.name, path

    index = work / CORPUS / "wavs.tsv"
    header, line = template_line(index, skip_header=True)
    form = line_former(line, *old)
    counts["wavs.tsv"] = write_lines(index, header, (form(*r) for r in rows(False)))

    transcript = work / CORPUS / "transcript.txt"
    _, line = template_line(transcript)
    words = line.split(maxsplit=1)[1]
    counts["transcript.txt"] = write_lines(
        transcript, None, (f"{r[0]} {words}" for r in rows(True))
    )

    for split in splits:
        manifest = work / MANIFESTS / f"{split.name}.jsonl"
        _, line = template_line(manifest)
        record = json.loads(line)
        tpl_path = record["audio"]["path"]
        tpl_utt = record.get("id") or Path(tpl_path).stem
        tpl_speaker, tpl_split = Path(tpl_path).parent.name, Path(tpl_path).parent.parent.name
        form = line_former(line, tpl_utt, tpl_speaker, tpl_split, tpl_path)
        mine = (r for r in rows(True) if r[2] == split.name)
        counts[f"{split.name}.jsonl"] = write_lines(manifest, None, (form(*r) for r in mine))
    update_stats(work / MANIFESTS / "stats.json", splits)
    return counts


def update_stats(path: Path, splits: list[Split]) -> None:
    """Keep stats.json consistent with the manifests (only keys the run's format has)."""
    stats = json.loads(path.read_text(encoding="utf-8"))
    for key, value in {
        "utterances": {s.name: s.lines for s in splits},
        "speakers": {s.name: len(s.speakers) for s in splits},
        "hours": {
            s.name: round(REAL_HOURS[s.name] * s.lines / REAL_LINES[s.name], 4) for s in splits
        },
    }.items():
        if isinstance(stats.get(key), dict):
            stats[key] = value
    if isinstance(stats.get("skipped"), dict) and "no_transcript" in stats["skipped"]:
        stats["skipped"]["no_transcript"] = sum(s.wavs - s.lines for s in splits)
    for key, value in {
        "wavs_in_archive": sum(s.wavs for s in splits),
        "transcript_lines": sum(s.lines for s in splits),
    }.items():
        if key in stats:
            stats[key] = value
    path.write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def one_mtime(root: Path, when: float) -> int:
    """Every file and directory under root (root included) gets mtime `when`."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
            n += 1
    os.utime(root, (when, when))
    return n + 1


# Where a dry run's time goes: (label, file suffix, function) of cProfile entries (they overlap:
# imports also happen while the workflow is parsed).
PHASES = [
    ("python imports (all)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("snakemake CLI argument parser", "snakemake/cli.py", "get_argument_parser"),
    ("parse Snakefile + rules/*.smk (include)", "snakemake/workflow.py", "include"),
    ("build DAG (_build_dag)", "snakemake/workflow.py", "_build_dag"),
    ("  of which needrun/mtime checks", "snakemake/dag.py", "update_needrun"),
]


def profile_dry_run(cwd: Path, cmd: list[str]) -> None:
    """cProfile one dry run and print the cumulative seconds of each phase."""
    prof = cwd / "bench-dag.prof"
    run([cmd[0], "-m", "cProfile", "-o", str(prof), *cmd[1:]], cwd)
    profile = pstats.Stats(str(prof))
    stats = profile.stats  # type: ignore[attr-defined]
    print(f"\ncProfile of one real-size dry run ({profile.total_tt:.2f} s):")
    for label, suffix, function in PHASES:
        cumtime = max(
            (v[3] for (f, _, fn), v in stats.items() if f.endswith(suffix) and fn == function),
            default=0.0,
        )
        print(f"  {label:42s} {cumtime:6.2f} s")


def default_configfiles(workdir: Path) -> list[str]:
    files = ["config.yaml", "profiles/demo/demo.yaml"]
    return [*files, "fast.yaml"] if (workdir / "fast.yaml").exists() else files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="an up-to-date demo run")
    parser.add_argument("--configfile", nargs="+", help="as the run used (default: see above)")
    parser.add_argument("--workflow-profile", default="profiles/demo")
    parser.add_argument("--speakers", type=int, default=sum(REAL_SPEAKERS.values()))
    parser.add_argument("--utterances", type=int, default=sum(REAL_WAVS.values()), help="wavs")
    parser.add_argument("--repeat", type=int, default=3, help="median of N (after a warm-up)")
    parser.add_argument("--profile", action="store_true", help="cProfile one real-size run")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()

    src = args.workdir.resolve()
    for needed in ["Snakefile", "results", ".snakemake", WAV_DIR, f"{MANIFESTS}/stats.json"]:
        if not (src / needed).exists():
            sys.exit(f"{src} is not a finished demo run: no {needed}")
    configfiles = args.configfile or default_configfiles(src)
    dry = snakemake_cmd(configfiles, args.workflow_profile, "-n")
    splits = plan_splits(args.speakers, args.utterances)

    with tempfile.TemporaryDirectory(prefix="bench-dag-") as tmp:
        demo, real = Path(tmp) / "demo", Path(tmp) / "real"
        copy_workdir(src, demo)
        copy_workdir(src, real)
        demo_files = sum(1 for _ in (demo / WAV_DIR).rglob("*.wav"))

        start = time.perf_counter()
        seed, tpl = seed_wav(real)
        wavs = fill_wavs(real, splits, seed)
        counts = rewrite_tables(real, splits, tpl)
        seed.unlink()
        now = time.time()  # benchmark files count as outputs (a job's oldest output)
        touched = sum(one_mtime(real / d, now) for d in OUTPUT_DIRS if (real / d).is_dir())
        build_s = time.perf_counter() - start

        version = [sys.executable, "-m", "snakemake", "--version"]
        medians = interleaved_medians(
            {
                "floor": lambda: run(version, demo)[0],
                "demo": lambda: dry_run(demo, dry, "demo size"),
                "real": lambda: dry_run(real, dry, "real size"),
            },
            args.repeat,
        )
        floor, demo_s, real_s = medians["floor"], medians["demo"], medians["real"]

        print(
            f"workdir: {src}; configfiles: {' '.join(configfiles)}; {os.cpu_count()} cores, "
            f"python {platform.python_version()}"
        )
        print(
            f"real-size tree: {wavs} wavs ({', '.join(f'{s.name} {s.wavs}' for s in splits)}) "
            f"from {sum(len(s.speakers) for s in splits)} speakers (demo: {demo_files} wavs); "
            f"lines: {', '.join(f'{k} {v}' for k, v in counts.items())}; "
            f"{touched} paths under {' and '.join(OUTPUT_DIRS)} set to one mtime; "
            f"built in {build_s:.1f} s"
        )
        print(f"seconds, median of {args.repeat} interleaved rounds after a warm-up round:")
        rows = [
            ("`snakemake --version` (startup floor)", floor, ""),
            ("`snakemake -n`, demo size (baseline)", demo_s, "   1.00x"),
            ("`snakemake -n`, real size", real_s, f"   {real_s / demo_s:.2f}x demo"),
        ]
        for label, seconds, ratio in rows:
            print(f"  {label:38s} {seconds:6.2f} s{ratio}")
        verdict = "met" if real_s < GOAL_S else "NOT met"
        print(f"goal < {GOAL_S:.0f} s at real size: {verdict}")
        if args.json:
            print(
                json.dumps(
                    {
                        "floor_s": round(floor, 3),
                        "demo_s": round(demo_s, 3),
                        "real_s": round(real_s, 3),
                        "ratio": round(real_s / demo_s, 3),
                        "goal_met": real_s < GOAL_S,
                        "wavs": wavs,
                        "demo_wavs": demo_files,
                        "speakers": sum(len(s.speakers) for s in splits),
                        "lines": counts,
                    }
                )
            )
        if args.profile:
            profile_dry_run(real, dry)


if __name__ == "__main__":
    main()
