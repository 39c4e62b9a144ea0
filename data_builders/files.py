"""Reading a release file as text, with the error a user can act on."""

from __future__ import annotations

from pathlib import Path

from genie.errors import GenieError

SPLITS = ("train", "dev", "test")


def check_split(split: str, source: str | Path) -> None:
    """Every builder takes train, dev and test, whatever the release calls its files."""
    if split not in SPLITS:
        raise GenieError(f"unknown split {split!r}, expected one of {', '.join(SPLITS)}", source)


def read_text(path: str | Path) -> str:
    """The file as UTF-8 (a BOM is dropped); a missing file or bad bytes name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise GenieError("no such file", path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GenieError("not UTF-8 text", path, raw[: exc.start].count(b"\n") + 1) from None


def first_existing(candidates: list[Path], what: str) -> Path:
    """The first of `candidates` that is a file; otherwise an error listing where we looked."""
    for path in candidates:
        if path.is_file():
            return path
    raise GenieError(f"no {what} found (looked for {', '.join(str(p) for p in candidates)})")
