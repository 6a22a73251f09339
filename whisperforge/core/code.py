"""Which whisperforge modules a step runs, read from the imports, and their digest."""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Collection
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# Modules that only word what goes wrong: editing them changes no step's output, so they are in
# no digest (a reworded error message must not retrain a model).
WORDING_ONLY = ("whisperforge/core/errors.py",)


def _imported_names(tree: ast.AST) -> list[str]:
    """Dotted names a module imports (function-level imports included: steps import lazily)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def imported_modules(
    path: str | Path, root: Path = PACKAGE_ROOT, skip: Collection[str] = ()
) -> list[Path]:
    """The whisperforge module files `path` imports, directly or through each other, sorted;
    `skip`: module files (posix paths under `root`) left out, with what only they import, as are
    the WORDING_ONLY ones."""
    skip = (*skip, *WORDING_ONLY)
    found: set[Path] = {root / name for name in skip}
    pending = [Path(path)]
    while pending:
        tree = ast.parse(pending.pop().read_text(encoding="utf-8"))
        for name in _imported_names(tree):
            if name.split(".")[0] != "whisperforge":
                continue
            module = root / (name.replace(".", "/") + ".py")
            if module.is_file() and module not in found:
                found.add(module)
                pending.append(module)
    return sorted(found - {root / name for name in skip})


def module_digest(path: str | Path, root: Path = PACKAGE_ROOT, skip: Collection[str] = ()) -> str:
    """sha256 (16 hex digits) of the module files `path` imports, names and contents (`skip`: as
    imported_modules's, for modules a step imports but does not run with its settings)."""
    digest = hashlib.sha256()
    for module in imported_modules(path, root, skip):
        digest.update(module.relative_to(root).as_posix().encode() + b"\0")
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]
