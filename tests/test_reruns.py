"""The "What reruns when" table: read from the rules, stated in the README, and complete.

tests/test_workflow.py checks the table against what `snakemake -n` plans after an edit."""

from __future__ import annotations

import re
import shutil

import pytest
from helpers import ROOT

from whisperforge.tools.reruns import NOT_A_STEP, markdown, rerun_table, step_code


def test_the_readme_states_the_table_the_rules_give():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"<!-- reruns: .*? -->\n(.*?)\n<!-- /reruns -->", readme, re.S)
    assert stated, "README.md has no reruns table"
    assert stated[1] == markdown(), "README's table is stale: python -m whisperforge.tools.reruns"


def test_every_step_script_has_a_code_digest():
    rules = "".join(path.read_text(encoding="utf-8") for path in (ROOT / "rules").glob("*.smk"))
    scripts = re.findall(r'^\s*"\.\./scripts/([\w.]+)"', rules, re.M)
    steps = {step.rule: step.script for step in step_code()}
    assert sorted(set(scripts)) == sorted(set(steps.values()))
    # `use rule ... as` rules take their parent's script and digest; every other one names both
    assert len(scripts) == len(steps) - len(re.findall(r"^\s*use rule ", rules, re.M))


def test_each_module_reruns_a_step_or_says_why_it_reruns_none():
    table = rerun_table()
    assert {module for module, rules in table.items() if not rules} == set(NOT_A_STEP)
    # the two edits the design turns on: CER code retrains only what computes a CER, and
    # the decoder is no part of an export's identity
    assert "finetune (if it computes a CER)" in table["whisperforge/metrics/cer.py"]
    assert "score" in table["whisperforge/metrics/cer.py"]
    assert "export_ct2" not in table["whisperforge/decode/transcribe.py"]
    assert "transcribe" in table["whisperforge/decode/transcribe.py"]


def test_a_new_module_that_no_step_imports_needs_its_reason(tmp_path):
    for folder in ("whisperforge", "scripts", "rules"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "whisperforge/metrics/unused.py").write_text("X = 1\n")
    with pytest.raises(ValueError, match=r"metrics/unused\.py: no step imports it"):
        markdown(tmp_path)
