"""The main path runs on Windows (the first user's machine): no POSIX-only module or call."""

from __future__ import annotations

import ast

from helpers import ROOT

POSIX_ONLY_MODULES = {"fcntl", "resource", "pwd", "grp", "termios", "posix"}
POSIX_ONLY_CALLS = {"sysconf", "getuid", "fork", "setsid", "killpg"}


def guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside an `if sys.platform ...` / `os.name` branch: a deliberate per-platform path."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and any(
            word in ast.unparse(node.test) for word in ("sys.platform", "os.name")
        ):
            return True
    return False


def test_no_posix_only_imports_or_calls_on_the_main_path():
    found = []
    for path in sorted([*(ROOT / "whisperforge").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            bad = [n for n in names if n in POSIX_ONLY_MODULES]
            if (
                isinstance(node, ast.Attribute)
                and node.attr in POSIX_ONLY_CALLS
                and ast.unparse(node.value) == "os"
            ):
                bad.append(f"os.{node.attr}")
            if bad and not guarded(node, parents):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {', '.join(bad)}")
    assert found == [], found
