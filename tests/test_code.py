"""A step's code digest covers exactly the whisperforge modules its script runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import ROOT

from whisperforge.core.code import imported_modules, module_digest


def names(paths: list[Path]) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in paths}


def test_a_step_covers_the_modules_it_imports_directly_and_through_others():
    finetune = names(imported_modules(ROOT / "scripts/finetune.py", ROOT))
    # finetune imports memory, checkpoints, gpu; its dev CER metric imports cer (lazily); the
    # loss plot is the plots module's (lazily). The error wording changes no output.
    for module in (
        "train/finetune",
        "train/dataset",
        "train/memory",
        "train/checkpoints",
        "train/gpu",
        "metrics/cer",
        "evaluate/plots",
    ):
        assert f"whisperforge/{module}.py" in finetune, module
    assert "whisperforge/core/errors.py" not in finetune
    assert "whisperforge/model/export.py" not in finetune
    export = names(imported_modules(ROOT / "scripts/export_ct2.py", ROOT))
    assert {"whisperforge/model/export.py", "whisperforge/decode/transcribe.py"} <= export
    subtitles = names(imported_modules(ROOT / "scripts/subtitles.py", ROOT))
    assert {"whisperforge/subtitles/cues.py", "whisperforge/decode/transcribe.py"} <= subtitles


def test_editing_a_module_changes_the_digest_of_exactly_the_steps_that_run_it(tmp_path):
    shutil.copytree(ROOT / "whisperforge", tmp_path / "whisperforge")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    scripts = sorted((tmp_path / "scripts").glob("*.py"))
    before = {s.name: module_digest(s, tmp_path) for s in scripts}
    cer = tmp_path / "whisperforge/metrics/cer.py"
    cer.write_text(cer.read_text() + "\n# an edit\n")
    after = {s.name: module_digest(s, tmp_path) for s in scripts}
    changed = {name for name in before if before[name] != after[name]}
    users = {s.name for s in scripts if cer in imported_modules(s, tmp_path)}
    assert changed == users
    assert {"finetune.py", "score.py"} <= changed  # training's dev CER and the scoring step
    assert "export_ct2.py" not in changed and "extract_aishell.py" not in changed


def test_a_skipped_module_and_what_only_it_imports_leave_the_digest(tmp_path):
    shutil.copytree(ROOT / "whisperforge", tmp_path / "whisperforge")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    finetune = tmp_path / "scripts/finetune.py"
    skip = ["whisperforge/metrics/cer.py"]
    before = module_digest(finetune, tmp_path), module_digest(finetune, tmp_path, skip)
    cer = tmp_path / "whisperforge/metrics/cer.py"
    cer.write_text(cer.read_text() + "\n# an edit\n")
    after = module_digest(finetune, tmp_path), module_digest(finetune, tmp_path, skip)
    assert after[0] != before[0] and after[1] == before[1]
    assert cer not in imported_modules(finetune, tmp_path, skip)
    assert tmp_path / "whisperforge/train/guard.py" in imported_modules(finetune, tmp_path, skip)
