"""Twitter-GMNER builder: CoNLL tweets (`txt/<split>.txt`) + Pascal-VOC boxes (`xml/<IMGID>.xml`).

Linking rule (reproduces the published v2.0 counts exactly): an entity gets the boxes of every
xml `<object>` whose `<name>` text equals the entity's tokens joined by single spaces, compared
as is (no case folding, no stripping). So an entity may get several boxes (one per object of
that name), every occurrence of a repeated entity in a tweet gets the same boxes (and each
occurrence counts them again in `boxes`), and a tweet without an xml file has only ungroundable
entities. Objects whose name matches no entity are counted, not used: v1 has such names
(typos like 'Westbroo', case changes, a trailing newline), v2.0 has none.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

from genie.data_builders import BuildResult
from genie.data_builders.conll import ConllTweet, bio_to_spans, read_conll
from genie.data_builders.files import check_split
from genie.errors import GenieError
from genie.records import Entity, Record

TypedSpan = tuple[int, int, str, str | None]  # start, end (exclusive), type, fine type
_COORDS = ("xmin", "ymin", "xmax", "ymax")


def build_gmner(source: Path, split: str) -> BuildResult:
    """Records of one split of a GMNER release folder (e.g. `Twitter10000_v2.0`)."""
    check_split(split, source)
    tweets = read_conll(Path(source) / "txt" / f"{split}.txt")
    return link_boxes(tweets, Path(source) / "xml", split, "gmner", _typed_spans)


def _typed_spans(tweet: ConllTweet) -> tuple[list[TypedSpan], int]:
    spans, orphans = bio_to_spans(tweet.tags[0])
    return [(start, end, kind, None) for start, end, kind in spans], orphans


def link_boxes(tweets: list[ConllTweet], xml_dir: Path, split: str, task: str,
               typed_spans: Callable[[ConllTweet], tuple[list[TypedSpan], int]]) -> BuildResult:
    """Records whose entities (from `typed_spans`: spans, types, fine types and orphan count)
    get the boxes of `xml_dir/<IMGID>.xml` by the linking rule above; everything found is counted."""
    counts = dict.fromkeys(("tweets", "entities", "groundable_entities", "boxes", "orphan_i_tags",
                            "xml_files_missing", "unmatched_xml_names", "unmatched_xml_objects"), 0)
    records: list[Record] = []
    for tweet in tweets:
        xml_path = xml_dir / f"{tweet.image_id}.xml"
        has_xml = xml_path.is_file()
        boxes_by_name = read_voc_boxes(xml_path) if has_xml else {}
        spans, orphans = typed_spans(tweet)
        entities = []
        for start, end, kind, fine in spans:
            text = " ".join(tweet.tokens[start:end])
            boxes = [list(box) for box in boxes_by_name.get(text, [])]
            entities.append(Entity(start=start, end=end, text=text, type=kind, boxes=boxes, fine_type=fine))
        records.append(Record(id=f"{split}-{tweet.image_id}", task=task, tokens=tweet.tokens,
                              image_id=tweet.image_id, entities=entities))
        texts = {e.text for e in entities}
        unmatched = [boxes for name, boxes in boxes_by_name.items() if name not in texts]
        counts["tweets"] += 1
        counts["entities"] += len(entities)
        counts["groundable_entities"] += sum(e.groundable for e in entities)
        counts["boxes"] += sum(len(e.boxes) for e in entities)
        counts["orphan_i_tags"] += orphans
        counts["xml_files_missing"] += not has_xml
        counts["unmatched_xml_names"] += len(unmatched)
        counts["unmatched_xml_objects"] += sum(len(boxes) for boxes in unmatched)
    return BuildResult(records=records, counts=counts)


def read_voc_boxes(path: Path) -> dict[str, list[list[int]]]:
    """`<name>` -> its boxes `[xmin, ymin, xmax, ymax]` (integer pixels), in file order."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc.msg).rsplit(": line ", 1)[0]
        raise GenieError(f"not valid XML ({reason}, column {column})", path, line) from None
    boxes: dict[str, list[list[int]]] = {}
    for k, obj in enumerate(root.iter("object"), start=1):
        name, bndbox = obj.findtext("name"), obj.find("bndbox")
        if name is None or bndbox is None:
            raise GenieError(f"<object> number {k} lacks a <name> or <bndbox>", path)
        try:
            box = [int(bndbox.findtext(c, "")) for c in _COORDS]
        except ValueError:
            raise GenieError(f"<object> {name!r} needs integer {', '.join(_COORDS)}", path) from None
        boxes.setdefault(name, []).append(box)
    return boxes
