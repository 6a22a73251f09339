#!/usr/bin/env python3
"""Regenerate the shipped offline demo archives (mini AISHELL-1, synthesized with espeak-ng).

    python scripts/make_demo_data.py --out demo/

writes `demo/data_aishell.tgz` (target domain) and `demo/base_domain.tgz` (base domain) and prints
each archive's md5, size and per-split counts, then the out-of-domain test set
`demo/base_voice_set/` (wavs and manifest.jsonl; run from the project root, as its manifest's paths
are relative to it). Needs espeak-ng and sox on PATH.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from whisperforge.core.errors import WhisperforgeError
    from whisperforge.demo.demodata import (
        DEMO_ARCHIVES,
        OUT_OF_DOMAIN_DIR,
        build_aishell_archive,
        build_eval_set,
    )
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from whisperforge.core.errors import WhisperforgeError
    from whisperforge.demo.demodata import (
        DEMO_ARCHIVES,
        OUT_OF_DOMAIN_DIR,
        build_aishell_archive,
        build_eval_set,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo"), help="output folder (demo/)")
    parser.add_argument(
        "--only",
        choices=sorted([*DEMO_ARCHIVES, OUT_OF_DOMAIN_DIR]),
        action="append",
        help="build just this archive or set (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    try:
        for name in args.only or [*DEMO_ARCHIVES, OUT_OF_DOMAIN_DIR]:
            if name == OUT_OF_DOMAIN_DIR:
                print(f"{build_eval_set(args.out / name)}")
                continue
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
