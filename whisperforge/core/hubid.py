"""Hub repo id or local path: the one rule by which `model.base` and an hf corpus's `path` are
told apart (core/basemodel.py, data/corpora.py). Standard library only: the Snakefile reads it."""

from __future__ import annotations

import re

# A hub repo id as the hub spells them: `name` or `owner/name`, letters, digits, `_.-`.
HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_hub_id(text: str, *, owner_required: bool = False) -> bool:
    """Whether `text` can be a hub repo id. Anything else is a path: absolute, `./`, `~`, deeper
    than owner/name, a Windows path (`C:\\models\\x`). The base model and the hf corpora decide
    with this one rule."""
    match = HUB_REPO_ID.match(text)
    return bool(match) and (match.group(1) is not None or not owner_required)
