"""`python -m whisperforge <command>`: helpers around the workflow (now: `doctor`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisperforge")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor",
        help="check that the configured run can work on this machine",
        description="Check what the configured run needs before starting it: CUDA for torch and "
        "CTranslate2, free disk and RAM, the base model, the data. One line per finding; exit "
        "status 0 when ready, 1 when something FAILs, 2 for a bad config.",
    )
    doctor.add_argument(
        "--configfile",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="config files overlaid on DIR/config.yaml in order, as with snakemake --configfile",
    )
    doctor.add_argument(
        "--directory",
        "-d",
        default=".",
        metavar="DIR",
        help="the workflow's working directory (default: the current one)",
    )
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from whisperforge.tools.doctor import main as doctor_main

        return doctor_main(args.configfile, args.directory)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
