"""Reader for MNRE v2 (`mnre_txt/mnre_{train,val ,test}.txt`; note the space in the dev file name).

Each line is a Python dict literal (single quotes: read with `ast.literal_eval`, never `eval`):
`{'token': [...], 'h': {'name', 'pos': [start, end)}, 't': {...}, 'img_id': 'x.jpg', 'relation': '/per/org/member_of'}`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from genie.data_builders.files import check_split, first_existing, read_text
from genie.errors import GenieError
from genie.labels import MNRE_LABELS

FILES = {"train": ("mnre_train.txt",), "dev": ("mnre_val .txt", "mnre_val.txt"), "test": ("mnre_test.txt",)}


@dataclass
class MnreLine:
    line: int
    tokens: list[str]
    head: tuple[int, int]
    tail: tuple[int, int]
    names_match: bool  # h/t `name` equal their tokens joined by spaces (tokens are what we keep)
    image_id: str  # `img_id` without its `.jpg`: features are `<image_id>.jpg.npz`
    relation: str


def mnre_file(source: Path, split: str) -> Path:
    check_split(split, source)
    folders = [Path(source), Path(source) / "mnre_txt"]
    return first_existing([folder / name for folder in folders for name in FILES[split]], f"MNRE {split} file")


def read_mnre(path: Path) -> list[MnreLine]:
    """Every line of an MNRE file; a malformed one raises GenieError(problem, path, line)."""
    lines = []
    for lineno, text in enumerate(read_text(path).split("\n"), start=1):
        if not text.strip():
            continue
        try:
            lines.append(_parse(text, lineno))
        except ValueError as exc:
            raise GenieError(str(exc), path, lineno) from None
    return lines


def _parse(text: str, lineno: int) -> MnreLine:
    data = literal_line(text)
    tokens = token_list(data)
    spans, names_match = [], True
    for key in ("h", "t"):
        start, end = entity_span(data[key], len(tokens), f"'{key}'")
        spans.append((start, end))
        names_match &= data[key].get("name") == " ".join(tokens[start:end])
    if not isinstance(data["img_id"], str) or not data["img_id"]:
        raise ValueError("'img_id' must be a non-empty string")
    if data["relation"] not in MNRE_LABELS:
        raise ValueError(f"relation {data['relation']!r} is not one of the 23 MNRE labels")
    return MnreLine(lineno, tokens, spans[0], spans[1], names_match, data["img_id"].removesuffix(".jpg"),
                    data["relation"])


def literal_line(text: str) -> dict:
    """One line of an MNRE-style release (MNRE, MORE): a Python dict literal with the keys
    `token`, `h`, `t`, `img_id` and `relation`; ValueError names what is wrong."""
    try:
        data = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not a Python dict literal ({type(exc).__name__}: {str(exc).splitlines()[0]:.60})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a dict, got {type(data).__name__}")
    missing = [key for key in ("token", "h", "t", "img_id", "relation") if key not in data]
    if missing:
        raise ValueError(f"missing key {', '.join(missing)}")
    return data


def token_list(data: dict) -> list[str]:
    """The `token` field, checked: MNRE lines and JMERE items share it."""
    tokens = data["token"]
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
        raise ValueError("'token' must be a non-empty list of non-empty strings")
    return tokens


def entity_span(entity: object, n_tokens: int, where: str) -> tuple[int, int]:
    """An entity's `pos`, [start, end) token offsets, checked against the tweet's length."""
    pos = entity.get("pos") if isinstance(entity, dict) else None
    if not (isinstance(pos, list) and len(pos) == 2 and all(type(v) is int for v in pos)
            and 0 <= pos[0] < pos[1] <= n_tokens):
        raise ValueError(f"{where}: 'pos' must be [start, end) inside the {n_tokens} tokens, got {pos!r}")
    return pos[0], pos[1]
