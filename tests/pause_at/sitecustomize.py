"""Test-only: stop a process at a named function so that a test can kill it there.

On PYTHONPATH with `WF_PAUSE_AT="module:Qualified.name:n[:text]"` and `WF_PAUSE_MARKER=<file>`,
the n-th call of that function in a process (counting only calls whose arguments mention `text`)
writes the marker file and sleeps: a job caught in the act of writing a checkpoint, an export, a
wav tree, until the test SIGKILLs its process group.
The module is patched as it is imported, so processes that never import it pay nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import time

_SPEC = os.environ.get("WF_PAUSE_AT")


def _pausing(function, nth: int, text: str, marker: str):
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        if text in repr((args, kwargs)):
            calls += 1
        if calls == nth:
            with open(marker, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {_SPEC}\n")
            time.sleep(3600)
        return function(*args, **kwargs)

    return wrapper


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, qualname: str, nth: int, text: str, marker: str) -> None:
        self.module, self.qualname, self.nth, self.text = module, qualname, nth, text
        self.marker = marker

    def find_spec(self, name, path, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)  # find the real spec, then patch once it has executed
        spec = importlib.util.find_spec(name)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            *owner_path, attr = self.qualname.split(".")
            owner = module
            for part in owner_path:
                owner = getattr(owner, part)
            setattr(owner, attr, _pausing(getattr(owner, attr), self.nth, self.text, self.marker))

        spec.loader.exec_module = exec_module
        return spec


if _SPEC:
    _module, _qualname, _nth, *_text = _SPEC.split(":", 3)
    sys.meta_path.insert(
        0,
        _PatchOnImport(
            _module, _qualname, int(_nth), "".join(_text), os.environ["WF_PAUSE_MARKER"]
        ),
    )
