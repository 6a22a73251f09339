"""Prepare what the GPU machine needs for benchmarks/bench_gpu.py, and print the command to run.

    python benchmarks/gpu_day.py [--with-ctranslate2] [--check-only] [--budget-s 450]

The GPU machine (bare each time, no network) has Python 3.12 with torch, transformers, peft,
accelerate, tensorboard, safetensors and pyarrow, but not what whisperforge's training path
imports besides (`datasets` and its pure-Python/small dependencies, `soundfile`, and `jsonschema`
for the config) nor CTranslate2. They travel as wheels: `pip download` for that Python
(--python-version 3.12, manylinux x86_64, binary only, --no-deps, an explicit pinned list: the
versions installed here, which the tests ran with) into benchmarks/wheels/ (git-ignored, so it
travels as a carried path). The working tree (tracked and untracked-but-not-ignored files: what
the device tool copies) plus the wheels must fit 64 MiB; the script checks and prints the command
and the paths to carry. ctranslate2's wheel (~41 MiB) does not fit beside the rest today, so it
is opt-in (`--with-ctranslate2`), and the budget check says so.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL_DIR = Path("benchmarks/wheels")  # relative to the repository root; in .gitignore
REQUIREMENTS = "requirements.txt"  # inside WHEEL_DIR: the pinned list the command installs
MiB = 2**20
LIMIT_BYTES = 64 * MiB  # the working tree plus what is carried
COMMAND_LIMIT = 2000  # characters of one device command
TARGET = [
    "--python-version",
    "3.12",
    "--platform",
    "manylinux2014_x86_64",
    "--platform",
    "manylinux_2_28_x86_64",  # pandas, soundfile (torch 2.11's own wheels need glibc 2.28 too)
    "--only-binary=:all:",
    "--no-deps",
]

# What the GPU machine lacks for whisperforge's training path, dependencies spelled out (--no-deps).
# Sizes: the wheels downloaded on 2026-12-03 (for the estimate when none is downloaded).
TRAINING_WHEELS: dict[str, int] = {
    "datasets": 608_276,  # whisperforge.data.hfdata / dataset: manifests as datasets
    "dill": 120_019,
    "multiprocess": 150_281,
    "xxhash": 472_238,
    "pandas": 12_031_410,  # datasets imports it at import time
    "python-dateutil": 92_853,
    "six": 11_050,
    "fsspec": 221_738,  # datasets pins a range; the machine's (torch's) may be outside it
    "soundfile": 1_315_963,  # audio.read_training_audio; bundles libsndfile
    "cffi": 219_572,
    "pycparser": 62_600,
    "jsonschema": 90_630,  # whisperforge.core.config: config.yaml validated as the rules do
    "jsonschema-specifications": 18_437,
    "referencing": 26_766,
    "rpds-py": 371_261,
    "attrs": 67_548,
}
CT2_WHEELS: dict[str, int] = {"ctranslate2": 42_779_791}


class PrepareError(Exception):
    """A one-line reason the GPU day cannot be prepared as asked."""


def pinned(names: list[str]) -> list[str]:
    """`name==version` at the version installed here (tested with), else the bare name."""
    specs = []
    for name in names:
        try:
            specs.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            specs.append(name)
    return specs


def wheel_names(with_ct2: bool) -> list[str]:
    return [*TRAINING_WHEELS, *(CT2_WHEELS if with_ct2 else {})]


def tree_files(root: Path = ROOT) -> list[Path]:
    """What the device tool sends: tracked files and untracked ones git does not ignore."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise PrepareError(f"{root}: cannot list the working tree with git ({e})") from None
    names = sorted({n for n in out.decode().split("\0") if n})
    return [root / n for n in names if (root / n).is_file()]  # a deleted tracked file is not sent


def tree_bytes(root: Path = ROOT) -> int:
    return sum(p.stat().st_size for p in tree_files(root))


def normalized(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def wheel_files(wheel_dir: Path) -> dict[str, Path]:
    """Downloaded wheels by normalized distribution name."""
    return {normalized(w.name.split("-")[0]): w for w in sorted(wheel_dir.glob("*.whl"))}


@dataclass(frozen=True)
class Payload:
    tree_bytes: int
    wheels: dict[str, int]  # distribution -> bytes (downloaded, or the recorded size)
    estimated: tuple[str, ...]  # distributions whose size is the recorded one, not a file

    @property
    def wheel_bytes(self) -> int:
        return sum(self.wheels.values())

    @property
    def total_bytes(self) -> int:
        return self.tree_bytes + self.wheel_bytes


def payload(with_ct2: bool, root: Path = ROOT) -> Payload:
    """What the prepared command sends: the working tree plus the wheels on the list."""
    recorded = {**TRAINING_WHEELS, **CT2_WHEELS}
    files = wheel_files(root / WHEEL_DIR)
    sizes, estimated = {}, []
    for name in wheel_names(with_ct2):
        wheel = files.get(normalized(name))
        if wheel is not None:
            sizes[name] = wheel.stat().st_size
        else:
            sizes[name] = recorded[name]
            estimated.append(name)
    return Payload(tree_bytes(root), sizes, tuple(estimated))


def check_fits(p: Payload, limit: int = LIMIT_BYTES) -> None:
    if p.total_bytes > limit:
        biggest = max(p.wheels, key=p.wheels.__getitem__)
        raise PrepareError(
            f"working tree {p.tree_bytes / MiB:.1f} MiB + wheels {p.wheel_bytes / MiB:.1f} MiB = "
            f"{p.total_bytes / MiB:.1f} MiB, over the {limit / MiB:.0f} MiB a device command "
            f"carries (largest wheel: {biggest}, {p.wheels[biggest] / MiB:.1f} MiB)"
        )


def download(specs: list[str], wheel_dir: Path) -> list[str]:
    """`pip download` each spec for the GPU machine's Python; the specs that failed (one line
    each: pip's last line)."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--quiet", *TARGET, "-d", str(wheel_dir)]
    proc = subprocess.run([*base, *specs], capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return []
    failed = []
    for spec in specs:  # one at a time, to say which
        one = subprocess.run([*base, spec], capture_output=True, text=True, check=False)
        if one.returncode != 0:
            last = (one.stderr.strip().splitlines() or ["pip failed"])[-1]
            failed.append(f"{spec}: {last}")
    return failed


def device_command(budget_s: float) -> str:
    """The one command for the device machine: install the wheels offline (resolving against what
    is installed there; if pip's resolver refuses, e.g. the machine's pyarrow or huggingface-hub
    is older than datasets pins, without dependencies), record the environment, run the bench."""
    w = WHEEL_DIR.as_posix()
    pip = "python -m pip install --no-index --find-links"
    command = (
        f"export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore; "
        f"{{ {pip} {w} -r {w}/{REQUIREMENTS} || {pip} {w} --no-deps -r {w}/{REQUIREMENTS}; }} "
        f"> $OUT/pip-install.log 2>&1; tail -n 3 $OUT/pip-install.log; "
        f"python -m pip list --format=freeze > $OUT/pip-freeze.txt 2>&1; nvidia-smi -L; "
        f"python benchmarks/bench_gpu.py --out $OUT --budget-s {budget_s:.0f} "
        f"> $OUT/bench.log 2>&1; echo bench exit $?; tail -n 60 $OUT/bench.log"
    )
    if len(command) > COMMAND_LIMIT:
        raise PrepareError(f"device command is {len(command)} characters, over {COMMAND_LIMIT}")
    return command


def carry_paths() -> list[str]:
    return [WHEEL_DIR.as_posix()]


def write_requirements(specs: list[str], wheel_dir: Path) -> Path:
    path = wheel_dir / REQUIREMENTS
    path.write_text("\n".join(specs) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-ctranslate2", action="store_true", help="carry ctranslate2 too")
    parser.add_argument("--check-only", action="store_true", help="no download: sizes only")
    parser.add_argument("--budget-s", type=float, default=450.0, help="bench_gpu.py --budget-s")
    args = parser.parse_args(argv)
    wheel_dir = ROOT / WHEEL_DIR
    specs = pinned(wheel_names(args.with_ctranslate2))
    try:
        if not args.check_only:
            # Wheels of an earlier list or version would travel too: start from an empty folder.
            for old in wheel_dir.glob("*.whl"):
                old.unlink()
            failed = download(specs, wheel_dir)
            for line in failed:
                print(f"unavailable: {line}")
            if failed:
                raise PrepareError(f"{len(failed)} wheel(s) could not be downloaded (above)")
            write_requirements(specs, wheel_dir)
        p = payload(args.with_ctranslate2)
        print(f"{'wheel':<28}{'MiB':>8}")
        for name, size in p.wheels.items():
            mark = " (recorded size; not downloaded)" if name in p.estimated else ""
            print(f"{name:<28}{size / MiB:>8.2f}{mark}")
        print(
            f"working tree {p.tree_bytes / MiB:.2f} MiB + wheels {p.wheel_bytes / MiB:.2f} MiB "
            f"= {p.total_bytes / MiB:.2f} MiB of {LIMIT_BYTES / MiB:.0f} MiB"
        )
        check_fits(p)
        command = device_command(args.budget_s)
    except PrepareError as e:
        print(f"gpu_day: {e}", file=sys.stderr)
        return 1
    print("\ncarry:", " ".join(carry_paths()))
    print(f"command ({len(command)} characters; run it with timeout_s {args.budget_s + 120:.0f}):")
    print(command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
