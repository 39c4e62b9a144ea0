"""MORE (NJUNLP/MORE, ACM MM 2023) -> MORE records: the entity of the text as entity 0, the object
of the image as object 0, their relation or none.

The release's layout (REFERENCE section 1): `txt/{train,valid,test}.txt`, one Python dict per line
(`{'token', 'h': {'name', 'pos'}, 't': {'name'}, 'img_id', 'relation'}`, read with
`ast.literal_eval`, never `eval`); `ent_{split}_dict.pth`, `{img_id: {object name: box}}` with
boxes as normalised `cx, cy, w, h`, saved with `torch.save` and loaded here with
`torch.load(weights_only=True)`, so a file that would run code when unpickled is refused;
`rel2id.json` (relation -> id, JSON on its first line), whose negative label (the first of
NA, na, no_relation, Other, Others, none, None it holds) becomes genie's None; and the images,
`img_org/{split}/<img_id>`, whose sizes turn the boxes into pixels (only their headers are read).
A line whose image or object box is missing is left out and counted.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

from genie.data_builders import BuildResult
from genie.data_builders.files import check_split, read_text
from genie.data_builders.mnre import entity_span, literal_line, token_list
from genie.errors import GenieError
from genie.labels import NO_RELATION, UNTYPED
from genie.records import Entity, GivenObject, Record, Relation

SPLIT_NAMES = {"train": "train", "dev": "valid", "test": "test"}  # genie's split -> the release's
NEGATIVE = ("NA", "na", "no_relation", "Other", "Others", "none", "None")


def build_more(source: Path, split: str) -> BuildResult:
    check_split(split, source)
    source, name = Path(source), SPLIT_NAMES[split]
    relations, negative = release_relations(source / "rel2id.json")
    objects = object_boxes(source / f"ent_{name}_dict.pth")
    images = source / "img_org" / name
    if not images.is_dir():
        raise GenieError("no images folder: MORE's object boxes are fractions of each image's size, so its "
                         "images are needed (img_org/<split>/)", images)
    path = source / "txt" / f"{name}.txt"
    records, left_out, sizes = [], Counter(), {}
    for lineno, text in enumerate(read_text(path).split("\n"), start=1):
        if not text.strip():
            continue
        try:
            line = _parse(text, relations)
        except ValueError as exc:
            raise GenieError(str(exc), path, lineno) from None
        if line["img_id"] not in sizes:
            sizes[line["img_id"]] = _image_size(images / line["img_id"])
        size, box = sizes[line["img_id"]], objects.get(line["img_id"], {}).get(line["object"])
        if size is None or box is None:
            left_out["no image" if size is None else "no object box"] += 1
            continue
        try:
            pixels = _pixels(box, size)
        except ValueError as exc:
            raise GenieError(f"object {line['object']!r} of image {line['img_id']!r}: {exc}",
                             source / f"ent_{name}_dict.pth") from None
        label = NO_RELATION if line["relation"] == negative else line["relation"]
        start, end = line["head"]
        records.append(Record(f"{split}-{lineno}", "more", line["tokens"], line["img_id"].removesuffix(".jpg"),
                              [Entity(start, end, " ".join(line["tokens"][start:end]), UNTYPED)],
                              [] if label == NO_RELATION else [Relation(0, 0, label, tail_object=True)],
                              objects=[GivenObject(line["object"], pixels)]))
    labels = Counter(r.relations[0].type if r.relations else NO_RELATION for r in records)
    counts = {"instances": len(records), "relations": len(records) - labels[NO_RELATION], "none": labels[NO_RELATION],
              "labels": len(labels), "release_relations": len(relations),
              "left_out_no_image": left_out["no image"], "left_out_no_object_box": left_out["no object box"]}
    return BuildResult(records=records, counts=counts)


def release_relations(path: Path) -> tuple[set[str], str | None]:
    """The release's relation names (`rel2id.json`, JSON on its first line) and its negative one."""
    first = read_text(path).split("\n", 1)[0]
    try:
        rel2id = json.loads(first)
    except json.JSONDecodeError as exc:
        raise GenieError(f"not JSON on its first line ({exc.msg})", path, 1) from None
    if not isinstance(rel2id, dict) or not rel2id or not all(isinstance(k, str) and k for k in rel2id):
        raise GenieError("expected an object of relation names -> ids", path, 1)
    return set(rel2id), next((name for name in NEGATIVE if name in rel2id), None)


def object_boxes(path: Path) -> dict:
    """`{img_id: {object name: box}}` from a `.pth`, unpickled with tensors and plain values only."""
    import torch

    if not path.is_file():
        raise GenieError("no such file", path)
    try:
        boxes = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as exc:
        raise GenieError(f"refused: not a file of tensors and plain values that loads without running code "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})", path) from None
    if not isinstance(boxes, dict) or not all(isinstance(v, dict) for v in boxes.values()):
        raise GenieError("expected {image id: {object name: box}}", path)
    return boxes


def _parse(text: str, relations: set[str]) -> dict:
    data = literal_line(text)
    tokens = token_list(data)
    head = entity_span(data["h"], len(tokens), "'h'")
    name = data["t"].get("name") if isinstance(data["t"], dict) else None
    if not isinstance(name, str) or not name.strip():
        raise ValueError("'t' must name the object: {'name': ...}")
    if not isinstance(data["img_id"], str) or not data["img_id"] or "/" in data["img_id"] or data["img_id"] in (".", ".."):
        raise ValueError("'img_id' must be an image file name")
    if data["relation"] not in relations:
        raise ValueError(f"relation {data['relation']!r} is not in the release's rel2id.json")
    return {"tokens": tokens, "head": head, "object": name, "img_id": data["img_id"], "relation": data["relation"]}


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image's header, or None when there is no readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def _pixels(box, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Normalised cx, cy, w, h -> xyxy pixels, clipped to the image."""
    values = box.tolist() if hasattr(box, "tolist") else box
    if not (isinstance(values, (list, tuple)) and len(values) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise ValueError(f"box must be 4 numbers (cx, cy, w, h), got {box!r:.60}")
    (cx, cy, w, h), (width, height) = values, size
    x1, y1 = max(0.0, (cx - w / 2) * width), max(0.0, (cy - h / 2) * height)
    x2, y2 = min(float(width), (cx + w / 2) * width), min(float(height), (cy + h / 2) * height)
    if not (x1 < x2 and y1 < y2):
        raise ValueError(f"box {values} has no area inside the {width}x{height} image")
    return (round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2))
