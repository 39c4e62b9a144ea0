"""Release files: the splits every builder takes, and finding and reading a file (`read_text`,
from genie.io) with the error a user can act on."""

from __future__ import annotations

import json
from pathlib import Path

from genie.errors import GenieError
from genie.io import read_text

__all__ = ["SPLITS", "check_split", "first_existing", "json_items", "read_text"]

SPLITS = ("train", "dev", "test")


def check_split(split: str, source: str | Path) -> None:
    """Every builder takes train, dev and test, whatever the release calls its files."""
    if split not in SPLITS:
        raise GenieError(f"unknown split {split!r}, expected one of {', '.join(SPLITS)}", source)


def first_existing(candidates: list[Path], what: str) -> Path:
    """The first of `candidates` that is a file; otherwise an error listing where we looked."""
    for path in candidates:
        if path.is_file():
            return path
    raise GenieError(f"no {what} found (looked for {', '.join(str(p) for p in candidates)})")


def json_items(path: Path) -> list[tuple[str, object]]:
    """(where, item) for a JSON array file or a JSON-lines file: the layouts releases ship."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GenieError(f"not valid JSON ({exc.msg}, column {exc.colno})", path, exc.lineno) from None
        return [(f"item {k}", item) for k, item in enumerate(items, start=1)]
    out = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                out.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise GenieError(f"not valid JSON ({exc.msg})", path, lineno) from None
    return out
