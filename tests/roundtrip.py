"""gold -> target -> parse -> evaluate, with an oracle grounding head: must give exactly 100 F1.

Shared by every task's tests (import as `from roundtrip import ...`), for every target format."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from genie.data import grounding_target
from genie.grammar.index import REGION
from genie.model.surface import Surface
from genie.options import TargetFormat
from genie.records import Record
from genie.regions.npz import RegionFeatures
from genie.tasks import Task
from genie.tasks.entity_text import IN_IMAGE


def oracle_regions(record: Record) -> RegionFeatures:
    """Candidate regions = every gold box of the tweet, as a perfect detector would give."""
    boxes = [b for e in record.entities for b in e.boxes] or [[0, 0, 1, 1]]
    n = len(boxes)
    return RegionFeatures(np.zeros((n, 1), np.float32), np.array(boxes, np.float32), np.ones(n, bool), (1, 1))


def formats(task: Task) -> list[str]:
    """The target formats `task` has."""
    return [f for f in TargetFormat if f == TargetFormat.TEXT or task.index_format is not None]


def round_trip(task: Task, records: list[Record], fmt: str = "text", surface: Surface | None = None) -> list[Record]:
    """Predictions parsed from each gold record's own target; slots grounded on the oracle regions.
    `surface`: text targets go through its tokenizer and back (`genie/model/surface.py`)."""
    predictions = []
    for record in records:
        if fmt == "text":
            target = task.linearize(record)
            written = target.text
            if surface is not None:
                written = surface.restore(surface.written(surface.escape(written)[0]), task, record)
            parsed = task.parse(written, record)
            marker = IN_IMAGE
        else:
            target = task.index_format.linearize(record)
            parsed = task.index_format.parse(target.indices, record)
            written, marker = target.indices, [task.index_format.grammar.index[REGION]] if task.grounded else None
        assert parsed.malformed == parsed.unmatched == 0, written
        assert len(parsed.slots) == len(target.slots)
        regions = oracle_regions(record)
        entities = [replace(e, boxes=[]) for e in parsed.entities]
        for (begin, end), k in zip(parsed.slots, parsed.slot_entities):
            assert written[begin:end] == marker
            gold = next((g for g in record.entities if g.span == entities[k].span), None)
            if gold is not None:  # a span read wrong (`Surface`'s one loss) is scored wrong anyway
                choice = int(np.argmax(grounding_target(regions, gold.boxes)))
                entities[k].boxes = [regions.boxes[choice].tolist()]
        predictions.append(replace(record, entities=entities, relations=parsed.relations))
    return predictions


def assert_perfect(task: Task, records: list[Record], surface: Surface | None = None) -> dict:
    """In every target format the task has (text, and index where it has one), every score the
    task reports is exactly 100 F1 (and MRE accuracy 100) on the round trip; returns the scores."""
    for fmt in formats(task):
        scores = task.evaluate(records, round_trip(task, records, fmt, surface))
        top = {name: s for name, s in scores.items() if isinstance(s, dict) and "f1" in s}
        assert task.headline in top and top[task.headline]["gold"] > 0, scores
        for name, score in top.items():
            assert score["f1"] == 100.0, (fmt, name, score)
        if "accuracy" in scores:
            assert scores["accuracy"] == 100.0
    return scores
