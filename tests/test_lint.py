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


def lint_imports(root) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300
    )


def test_each_stage_imports_only_the_stages_below_it():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_an_import_of_a_later_stage_breaks_the_contract(tmp_path):
    import shutil

    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "whisperforge", tmp_path / "whisperforge")
    errors = tmp_path / "whisperforge/core/errors.py"
    errors.write_text(errors.read_text() + "\nimport whisperforge.report.summary  # noqa\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "whisperforge.core.errors -> whisperforge.report.summary" in proc.stdout, proc.stdout
