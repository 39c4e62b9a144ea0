"""JMERE records: every (head, relation, tail) triple of a tweet, from either source.

- The JMERE release: `{train,val,test}.json`, one JSON array (or one object per line) of
  `{"token", "img_id", "label_list": [{"beg_ent": {"name", "pos", "tags"}, "sec_ent": {...}, "relation"}]}`
  (the published files wrap each label in a one-element list; both shapes are read).
- MNRE v2 (`mnre_txt/`): the lines of one sentence and image are grouped, wherever they are in
  the file, and None pairs are dropped; a sentence left with no relation is dropped too. (The
  published JMERE grouped only consecutive lines and cut a group at a None line, so one
  sentence could become several records: 3617/495/474 sentences, against 3468/473/460 here for
  the same 4503/624/640 triples.)

Entities are the distinct (span, type) pairs the triples name; a triple listed twice is kept
once and counted.
"""

from __future__ import annotations

from pathlib import Path

from genie.data_builders import BuildResult
from genie.data_builders.files import check_split, first_existing, json_items
from genie.data_builders.mnre import entity_span, mnre_file, read_mnre, token_list
from genie.errors import GenieError
from genie.labels import JMERE_RELATIONS, NO_RELATION, RELATION_TYPES, split_path
from genie.records import Entity, Record, Relation

JSON_FILES = {"train": ("train.json",), "dev": ("val.json", "dev.json"), "test": ("test.json",)}
Triple = tuple[tuple[int, int], str, str, tuple[int, int], str]  # head span, type, relation, tail span, type


def build_jmere(source: Path, split: str) -> BuildResult:
    check_split(split, source)
    json_files = [Path(source) / name for name in JSON_FILES[split]]
    if any(path.is_file() for path in json_files):
        return _from_json(first_existing(json_files, "JMERE file"), split)
    return _from_mnre(source, split)


def _from_mnre(source: Path, split: str) -> BuildResult:
    lines = read_mnre(mnre_file(source, split))
    groups: dict[tuple, list] = {}  # (tokens, image) -> [first line, tokens, image, triples]
    for line in lines:
        group = groups.setdefault((tuple(line.tokens), line.image_id), [line.line, line.tokens, line.image_id, []])
        if line.relation != NO_RELATION:
            head_type, tail_type, relation = split_path(line.relation)
            group[3].append((line.head, head_type, relation, line.tail, tail_type))
    builder = _Records()
    for first, tokens, image_id, found in groups.values():
        if found:
            builder.add(f"{split}-{first}", tokens, image_id, found)
    counts = {"mnre_lines": len(lines), "none_lines": sum(line.relation == NO_RELATION for line in lines),
              "sentences_without_relation": sum(not g[3] for g in groups.values()), **builder.counts}
    return BuildResult(builder.records, counts)


def _from_json(path: Path, split: str) -> BuildResult:
    builder = _Records()
    for where, item in json_items(path):
        try:
            tokens, image_id, found = _parse_item(item)
        except ValueError as exc:
            raise GenieError(f"{where}: {exc}", path) from None
        builder.add(f"{split}-{len(builder.records) + 1}", tokens, image_id, found)
    return BuildResult(builder.records, builder.counts)


def _parse_item(item: object) -> tuple[list[str], str, list[Triple]]:
    if not isinstance(item, dict) or not all(k in item for k in ("token", "img_id", "label_list")):
        raise ValueError("expected an object with 'token', 'img_id' and 'label_list'")
    tokens = token_list(item)
    if not isinstance(item["img_id"], str) or not isinstance(item["label_list"], list):
        raise ValueError("'img_id' must be a string and 'label_list' a list")
    found = []
    for k, label in enumerate(item["label_list"], start=1):
        if isinstance(label, list) and len(label) == 1:
            label = label[0]
        if not isinstance(label, dict) or not all(key in label for key in ("beg_ent", "sec_ent", "relation")):
            raise ValueError(f"label {k} needs 'beg_ent', 'sec_ent' and 'relation'")
        if label["relation"] == NO_RELATION:
            continue
        if label["relation"] not in JMERE_RELATIONS:
            raise ValueError(f"label {k}: relation {label['relation']!r} is not a JMERE relation")
        (head, head_type), (tail, tail_type) = (_entity(label[key], len(tokens), k) for key in ("beg_ent", "sec_ent"))
        found.append((head, head_type, label["relation"], tail, tail_type))
    return tokens, item["img_id"].removesuffix(".jpg"), found


def _entity(entity: object, n_tokens: int, k: int) -> tuple[tuple[int, int], str]:
    span = entity_span(entity, n_tokens, f"label {k}: entity")
    if entity.get("tags") not in RELATION_TYPES:
        raise ValueError(f"label {k}: entity 'tags' must be one of {', '.join(RELATION_TYPES)}, "
                         f"got {entity.get('tags')!r}")
    return span, entity["tags"]


class _Records:
    """Turns a sentence's triples into a record: distinct (span, type) entities, distinct triples."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.counts = {"sentences": 0, "triples": 0, "entities": 0, "duplicate_triples": 0,
                       "self_relations": 0, "spans_with_two_types": 0}

    def add(self, record_id: str, tokens: list[str], image_id: str, found: list[Triple]) -> None:
        kept = [t for t in found if (t[0], t[1]) != (t[3], t[4])]  # a record cannot relate an entity to itself
        entities: dict[tuple[tuple[int, int], str], int] = {}
        relations: dict[tuple[int, int, str], Relation] = {}
        for head, head_type, relation, tail, tail_type in kept:
            h, t = (entities.setdefault(key, len(entities)) for key in ((head, head_type), (tail, tail_type)))
            relations.setdefault((h, t, relation), Relation(h, t, relation))
        self.records.append(Record(record_id, "jmere", tokens, image_id,
                                   [Entity(s, e, " ".join(tokens[s:e]), kind) for (s, e), kind in entities],
                                   list(relations.values())))
        spans = [span for span, _ in entities]
        self.counts["sentences"] += 1
        self.counts["triples"] += len(relations)
        self.counts["entities"] += len(entities)
        self.counts["self_relations"] += len(found) - len(kept)
        self.counts["duplicate_triples"] += len(kept) - len(relations)
        self.counts["spans_with_two_types"] += len(spans) - len(set(spans))
