"""The record format shared by gold data and predictions (one JSON object per line).

`{"id", "task", "tokens", "image_id", "entities": [{"start", "end", "text", "type", "boxes"[, "fine_type"]
[, "in_image"]}][, "relations": [{"head", "tail", "type"}]][, "unreadable"]}` with token offsets (end
exclusive), xyxy pixel boxes (`boxes: []` means not in the image, unless `in_image` is true),
FMNERG's fine type beside the coarse `type`, and relations whose `head` / `tail` index into
`entities`. `context` holds text that is not in the post, `[{"source", "text"}]` (a caption, an
LLM's explanation, retrieved knowledge: `genie/context.py`). `objects` are objects of the image
given as input, `[{"name", "box"}]` (box in xyxy pixels like every other box): a relation whose
`tail_object` is true links its head entity to object `tail` (MORE). A prediction's `unreadable` counts
what the model generated that could not be read into entities or relations: every metric counts
those as wrong predictions. The optional fields are written only when set.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from genie.errors import GenieError
from genie.io import atomic_write

Box = list[float]
T = TypeVar("T")


@dataclass
class Entity:
    start: int
    end: int
    text: str
    type: str
    boxes: list[Box] = field(default_factory=list)
    fine_type: str | None = None
    # Said to be in the image though it has no box: a prediction whose image had no region to
    # choose. It is then scored as groundable with no box, never as "not in the image".
    in_image: bool = False

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def groundable(self) -> bool:
        return bool(self.boxes) or self.in_image

    def to_dict(self) -> dict:
        out = {"start": self.start, "end": self.end, "text": self.text, "type": self.type, "boxes": self.boxes}
        if self.fine_type is not None:
            out["fine_type"] = self.fine_type
        if self.in_image and not self.boxes:
            out["in_image"] = True
        return out


@dataclass
class Relation:
    head: int  # index into the record's entities
    tail: int  # index into the entities, or into the objects when `tail_object`
    type: str
    tail_object: bool = False

    def to_dict(self) -> dict:
        out = {"head": self.head, "tail": self.tail, "type": self.type}
        if self.tail_object:
            out["tail_object"] = True
        return out


@dataclass(frozen=True)
class GivenObject:
    """An object of the image given as input, not predicted: its name ("person") and where it is."""

    name: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the image's pixels

    def to_dict(self) -> dict:
        return {"name": self.name, "box": list(self.box)}

    @classmethod
    def from_dict(cls, data: object, label: str = "object") -> "GivenObject":
        if not isinstance(data, dict) or set(data) != {"name", "box"}:
            raise ValueError(f"{label} must be an object with exactly 'name' and 'box'")
        name, box = data["name"], data["box"]
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{label} name must be a non-empty string")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            raise ValueError(f"{label} box must be [x1, y1, x2, y2] in pixels")
        if not (0 <= box[0] < box[2] and 0 <= box[1] < box[3]):
            raise ValueError(f"{label} box {box} must have x1 < x2, y1 < y2 and no negative corner")
        return cls(name, tuple(float(v) for v in box))


@dataclass(frozen=True)
class Context:
    source: str  # what wrote it: caption, llm, wiki, ...
    text: str

    @classmethod
    def from_dict(cls, data: object, label: str = "context") -> "Context":
        if not isinstance(data, dict) or set(data) != {"source", "text"}:
            raise ValueError(f"{label} must be an object with exactly 'source' and 'text'")
        source, text = data["source"], data["text"]
        if not isinstance(source, str) or not source or any(c.isspace() or c == "|" for c in source):
            raise ValueError(f"{label} source must be a name without spaces or '|', got {source!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{label} text must be a non-empty string")
        return cls(source, text)


@dataclass
class Record:
    id: str
    task: str
    tokens: list[str]
    image_id: str
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    unreadable: int = 0  # predicted parts the parser could not read: wrong predictions, for every metric
    context: list[Context] = field(default_factory=list)
    objects: list[GivenObject] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {"id": self.id, "task": self.task, "tokens": self.tokens, "image_id": self.image_id,
               "entities": [e.to_dict() for e in self.entities]}
        if self.relations:
            out["relations"] = [r.to_dict() for r in self.relations]
        if self.unreadable:
            out["unreadable"] = self.unreadable
        if self.context:
            out["context"] = [{"source": c.source, "text": c.text} for c in self.context]
        if self.objects:
            out["objects"] = [o.to_dict() for o in self.objects]
        return out

    @classmethod
    def from_dict(cls, data: object) -> "Record":
        """Build and validate a record; raises ValueError naming the first problem."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ("id", "task", "tokens", "image_id") if k not in data]
        if missing:
            raise ValueError(f"record is missing {', '.join(missing)}")
        for key in ("id", "task", "image_id"):
            if not isinstance(data[key], (str, int)) or isinstance(data[key], bool):
                raise ValueError(f"'{key}' must be a string")
        tokens = data["tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError("'tokens' must be a list of strings")
        raw_entities, raw_relations = data.get("entities", []), data.get("relations", [])
        if not isinstance(raw_entities, list) or not isinstance(raw_relations, list):
            raise ValueError("'entities' and 'relations' must be lists")
        entities = [_entity_from_dict(ent, len(tokens), k) for k, ent in enumerate(raw_entities)]
        raw_objects = data.get("objects", [])
        if not isinstance(raw_objects, list):
            raise ValueError("'objects' must be a list of {\"name\", \"box\"} objects")
        objects = [GivenObject.from_dict(o, f"object {k}") for k, o in enumerate(raw_objects)]
        relations = [_relation_from_dict(rel, len(entities), len(objects), k) for k, rel in enumerate(raw_relations)]
        unreadable = data.get("unreadable", 0)
        if not _is_int(unreadable) or unreadable < 0:
            raise ValueError(f"'unreadable' must be a count (an integer >= 0), got {unreadable!r}")
        raw_context = data.get("context", [])
        if not isinstance(raw_context, list):
            raise ValueError("'context' must be a list of {\"source\", \"text\"} objects")
        return cls(id=str(data["id"]), task=str(data["task"]), tokens=tokens, image_id=str(data["image_id"]),
                   entities=entities, relations=relations, unreadable=unreadable,
                   context=[Context.from_dict(c, f"context {k}") for k, c in enumerate(raw_context)],
                   objects=objects)


def _entity_from_dict(ent: object, n_tokens: int, k: int) -> Entity:
    if not isinstance(ent, dict):
        raise ValueError(f"entity {k} is not an object")
    for key in ("start", "end", "type"):
        if key not in ent:
            raise ValueError(f"entity {k} is missing '{key}'")
    start, end = ent["start"], ent["end"]
    if not (_is_int(start) and _is_int(end)) or not 0 <= start < end <= n_tokens:
        raise ValueError(f"entity {k} offsets [{start}, {end}) fall outside its {n_tokens} tokens")
    boxes = ent.get("boxes", [])
    if not isinstance(boxes, list) or not all(
        isinstance(b, list) and len(b) == 4 and all(_is_number(v) for v in b) for b in boxes
    ):
        raise ValueError(f"entity {k} boxes must be a list of [x1, y1, x2, y2]")
    fine_type = ent.get("fine_type")
    if fine_type is not None and not isinstance(fine_type, str):
        raise ValueError(f"entity {k} fine_type must be a string")
    in_image = ent.get("in_image", False)
    if not isinstance(in_image, bool):
        raise ValueError(f"entity {k} in_image must be true or false")
    if boxes and not in_image and "in_image" in ent:
        raise ValueError(f"entity {k} has boxes but says in_image false")
    return Entity(start=start, end=end, text=str(ent.get("text", "")), type=str(ent["type"]),
                  boxes=[list(b) for b in boxes], fine_type=fine_type, in_image=in_image and not boxes)


def _relation_from_dict(rel: object, n_entities: int, n_objects: int, k: int) -> Relation:
    if not isinstance(rel, dict) or not all(key in rel for key in ("head", "tail", "type")):
        raise ValueError(f"relation {k} must be an object with 'head', 'tail' and 'type'")
    head, tail, to_object = rel["head"], rel["tail"], rel.get("tail_object", False)
    if not isinstance(to_object, bool):
        raise ValueError(f"relation {k} tail_object must be true or false")
    n_tails, tails = (n_objects, "objects") if to_object else (n_entities, "entities")
    if not (_is_int(head) and _is_int(tail)) or not (0 <= head < n_entities and 0 <= tail < n_tails):
        raise ValueError(f"relation {k} head {head!r} must index the record's {n_entities} entities and "
                         f"tail {tail!r} its {n_tails} {tails}")
    if head == tail and not to_object:
        raise ValueError(f"relation {k} links entity {head} to itself")
    if not isinstance(rel["type"], str) or not rel["type"]:
        raise ValueError(f"relation {k} type must be a non-empty string")
    return Relation(head=head, tail=tail, type=rel["type"], tail_object=to_object)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A finite JSON number (Python's json also reads NaN and Infinity)."""
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def read_records(path: str | Path, bad_lines: BadLines | None = None) -> list[Record]:
    """Read a record JSONL file; a bad line raises GenieError naming the file and line (or, with
    `bad_lines`, is counted there and skipped)."""
    return read_lines(path, Record.from_dict, bad_lines)


@dataclass
class BadLines:
    """Lines skipped because the user asked to (`on_bad_line=skip`): counted, the first kept."""

    count: int = 0
    first: str | None = None

    def add(self, error: GenieError) -> None:
        self.count += 1
        self.first = self.first or str(error)

    def report(self) -> dict:
        return {"skipped_lines": self.count, **({"first_skipped": self.first} if self.first else {})}


def read_lines(path: str | Path, parse: Callable[[object], T], bad_lines: BadLines | None = None,
               what: str = "a genie record") -> list[T]:
    """`parse` applied to each non-empty JSON line (`iter_lines`)."""
    return [row for _, row in iter_lines(path, parse, bad_lines, what) if row is not None]


def iter_lines(path: str | Path, parse: Callable[[object], T], bad_lines: BadLines | None = None,
               what: str = "a genie record", text: bool = False) -> Iterator[tuple[int, T | None]]:
    """(line number, row) for each line of the file, as it is read: `parse` of the line's JSON
    value (with `text`, of its text without the line ending), None for a blank line. `parse`'s
    ValueError becomes a GenieError naming the file and line ("not <what>: ..."), raised, or
    counted in `bad_lines` and the line skipped."""
    path = Path(path)
    if not path.is_file():
        raise GenieError("no such file", path)
    with path.open("rb") as handle:
        for lineno, raw in enumerate(_bounded_lines(handle), start=1):
            try:
                if raw is None:
                    raise GenieError(f"not {what}: a line longer than {MAX_LINE_BYTES >> 20} MB (not read)", path,
                                     lineno)
                yield lineno, _parse_line(raw, parse, path, lineno, what, text)
            except GenieError as exc:
                if bad_lines is None:
                    raise
                bad_lines.add(exc)


MAX_LINE_BYTES = 64 << 20  # a post of 10,000 words is about 60 kB; a line past this is never held whole


def _bounded_lines(handle) -> Iterator[bytes | None]:
    """The file's lines, None for one longer than `MAX_LINE_BYTES` (read past, a block at a time),
    so no single line takes more memory than that."""
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
            pass
        yield None


def _parse_line(raw: bytes, parse: Callable[[object], T], path: Path, lineno: int, what: str,
                text: bool) -> T | None:
    """The line's parsed row (None for a blank line)."""
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError:
        raise GenieError(f"not {what}: not UTF-8 text" if text else "not UTF-8 text", path, lineno) from None
    if not line.strip():
        return None
    try:
        return parse(line.rstrip("\r\n") if text else json.loads(line))
    except json.JSONDecodeError as exc:
        raise GenieError(f"not valid JSON ({exc.msg})", path, lineno) from None
    except ValueError as exc:
        raise GenieError(f"not {what}: {exc}", path, lineno) from None


def write_records(path: str | Path, records: Iterable[Record]) -> int:
    """Write records atomically, each checked to read back as `read_records` reads it, so no
    builder or decoder can write a file genie then refuses; returns how many were written."""
    return write_lines(path, (checked_row(record, path, lineno) for lineno, record in enumerate(records, 1)))


def checked_row(record: Record, path: str | Path, lineno: int) -> dict:
    """`record` as the JSON object written at `lineno` of `path`, checked to read back."""
    row = record.to_dict()
    try:
        Record.from_dict(json.loads(json.dumps(row)))  # exactly what a reader will see
    except ValueError as exc:
        raise GenieError(f"record {record.id!r} would not read back: {exc}", path, lineno) from None
    return row


def write_lines(path: str | Path, rows: Iterable[dict]) -> int:
    """Write JSON lines atomically; returns how many were written."""
    n = 0
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
