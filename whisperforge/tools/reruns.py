"""Which steps rerun when a whisperforge module changes: the README's "What reruns when" table.

Each rule takes the digest of the modules its step script imports as a param (`code_digest` /
`training_code` in rules/common.smk), so a module edit reruns exactly the rules whose script
reaches it, and everything downstream of them. This reads that mapping from the rules themselves
(their `code=` params) and the imports (`core/code.py`), so the table cannot drift from what
`snakemake -n` plans (tests/test_reruns.py checks both).

    python -m whisperforge.tools.reruns   # prints the table as markdown
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from whisperforge.core.code import PACKAGE_ROOT, WORDING_ONLY, imported_modules

_RULE = re.compile(r"^\s*(?:rule|checkpoint) (\w+):")
_USE_RULE = re.compile(r"^\s*use rule (\w+) as (\w+)")
_CODE = re.compile(r"code=(?:lambda \w+: )?(code_digest|training_code)\(")
_SCRIPT = re.compile(r'code_digest\("([\w.]+)"(?:, skip=\[(\w+)\])?')
_CONSTANT = re.compile(r'^(\w+_MODULE) = "([\w/.]+)"', re.MULTILINE)
TRAINING_SCRIPT = "finetune.py"
# training_code's condition (rules/common.smk): the CER code counts only where training computes
# a CER; the table says so beside those rules.
CONDITIONAL = "CER_MODULE"
CONDITION = "if it computes a CER"  # metric_for_best: cer, or the forgetting guard
# Modules no step script imports, and why that is right.
NOT_A_STEP = {
    "whisperforge/__main__.py": "`python -m whisperforge` (doctor)",
    "whisperforge/core/code.py": "read when Snakemake parses the workflow (the digests)",
    "whisperforge/core/config.py": "read when Snakemake parses the workflow (validation)",
    "whisperforge/core/instances.py": "the lock each step holds while it runs",
    "whisperforge/demo/demodata.py": "makes the shipped demo data (scripts/make_demo_data.py)",
    "whisperforge/demo/demolectures.py": "makes the shipped demo data (scripts/make_demo_data.py)",
    "whisperforge/tools/doctor.py": "`python -m whisperforge doctor`",
    "whisperforge/tools/reruns.py": "this table",
    **{module: "error wording only (core/code.py: WORDING_ONLY)" for module in WORDING_ONLY},
}


@dataclass(frozen=True)
class StepCode:
    """A rule, the step script whose imports make its digest, and the module it leaves out."""

    rule: str
    script: str
    skip: str | None = None
    skip_unless: str | None = None  # `skip` counts back in under this condition


def step_code(root: Path = PACKAGE_ROOT) -> list[StepCode]:
    """Every rule with a code digest, read from rules/*.smk (snakefmt keeps their layout)."""
    common = (root / "rules/common.smk").read_text(encoding="utf-8")
    constants = dict(_CONSTANT.findall(common))
    steps: dict[str, StepCode] = {}
    for smk in sorted((root / "rules").glob("*.smk")):
        rule = None
        for line in smk.read_text(encoding="utf-8").splitlines():
            if match := _RULE.match(line):
                rule = match[1]
            elif match := _USE_RULE.match(line):
                steps[match[2]] = StepCode(match[2], steps[match[1]].script, steps[match[1]].skip)
            elif rule and (code := _CODE.search(line)):
                if code[1] == "training_code":
                    step = StepCode(rule, TRAINING_SCRIPT, constants[CONDITIONAL], CONDITION)
                else:
                    script, skip = _SCRIPT.search(line).groups()
                    step = StepCode(rule, script, constants[skip] if skip else None)
                steps[rule] = step
    return list(steps.values())


def rerun_table(root: Path = PACKAGE_ROOT) -> dict[str, list[str]]:
    """module (posix path under `root`) -> the rules a change to it reruns directly, each with
    its condition where it has one."""
    table: dict[str, list[str]] = {
        path.relative_to(root).as_posix(): []
        for path in sorted((root / "whisperforge").rglob("*.py"))
        if path.name != "__init__.py"
    }
    for step in step_code(root):
        for module in imported_modules(root / "scripts" / step.script, root):
            name = module.relative_to(root).as_posix()
            if name != step.skip:
                table[name].append(step.rule)
            elif step.skip_unless:
                table[name].append(f"{step.rule} ({step.skip_unless})")
    return {module: sorted(rules) for module, rules in table.items()}


def markdown(root: Path = PACKAGE_ROOT) -> str:
    """The table as the README shows it."""
    lines = ["| module | reruns (and what reads their outputs) |", "| --- | --- |"]
    for module, rules in rerun_table(root).items():
        shown = ", ".join(f"`{rule}`" if " " not in rule else rule for rule in rules)
        if not rules and module not in NOT_A_STEP:
            raise ValueError(f"{module}: no step imports it; say why in reruns.NOT_A_STEP")
        if not rules:
            shown = f"nothing: {NOT_A_STEP[module]}"
        lines.append(f"| `{module.removeprefix('whisperforge/')}` | {shown} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
