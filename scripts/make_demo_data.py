#!/usr/bin/env python3
"""Regenerate the shipped offline demo archives (mini AISHELL-1, synthesized with espeak-ng).

    python scripts/make_demo_data.py --out demo/

writes `demo/data_aishell.tgz` (target domain) and `demo/base_domain.tgz` (base domain) and prints
each archive's md5, size and per-split counts. Needs espeak-ng and sox on PATH.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from whisperforge.demodata import DEMO_ARCHIVES, build_aishell_archive
    from whisperforge.errors import WhisperforgeError
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from whisperforge.demodata import DEMO_ARCHIVES, build_aishell_archive
    from whisperforge.errors import WhisperforgeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo"), help="output folder (demo/)")
    parser.add_argument(
        "--only",
        choices=sorted(DEMO_ARCHIVES),
        action="append",
        help="build just this archive (repeatable; default: both)",
    )
    args = parser.parse_args(argv)
    try:
        for name in args.only or DEMO_ARCHIVES:
            s = build_aishell_archive(args.out / name, DEMO_ARCHIVES[name])
            counts = " ".join(
                f"{k}={v} ({s.seconds[k]:.0f} s)" for k, v in s.utterances.items() if v
            )
            print(f"{s.md5}  {s.path}  {s.size} bytes  {counts}  orphans={s.orphans}")
            print(f"    durations {s.min_duration:.2f}-{s.max_duration:.2f} s")
    except WhisperforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
