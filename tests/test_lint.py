"""The workflow and the code stay lint-clean: ruff, snakefmt, snakemake --lint."""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_clean():
    proc = run(sys.executable, "-m", "ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout[-3000:]
    proc = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_snakefmt_clean():
    proc = run(sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules/")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_snakemake_lint_clean_for_real_and_demo_configs():
    for profile in ("profiles/default", "profiles/demo"):
        proc = run(sys.executable, "-m", "snakemake", "--lint", "--workflow-profile", profile)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Lints for" not in proc.stdout + proc.stderr, proc.stdout[-3000:]
