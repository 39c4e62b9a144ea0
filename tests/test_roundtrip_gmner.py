"""gold -> target -> parse -> evaluate must give exactly 100 F1, on fixtures and real data."""

from __future__ import annotations

import numpy as np
import pytest

from data_builders.gmner import build_gmner
from genie.data import grounding_target
from genie.demo import build_demo
from genie.features import RegionFeatures
from genie.records import Entity, Record, read_records
from genie.tasks import get_task

TASK = get_task("gmner")


def oracle_regions(record: Record) -> RegionFeatures:
    """Candidate regions = every gold box of the tweet, as a perfect detector would give."""
    boxes = [b for e in record.entities for b in e.boxes] or [[0, 0, 1, 1]]
    n = len(boxes)
    return RegionFeatures(np.zeros((n, 1), np.float32), np.array(boxes, np.float32), np.ones(n, bool), (1, 1))


def round_trip(records: list[Record]) -> list[Record]:
    predictions = []
    for record in records:
        target = TASK.linearize(record)
        parsed = TASK.parse(target.text, record)
        assert parsed.malformed == parsed.unmatched == 0, target.text
        assert len(parsed.slots) == len(target.slots)
        regions = oracle_regions(record)
        entities = [Entity(e.start, e.end, e.text, e.type, []) for e in parsed.entities]
        for (begin, end), k in zip(parsed.slots, parsed.slot_entities):
            assert target.text[begin:end] == "which is in the image"
            gold = next(g for g in record.entities if g.span == entities[k].span)
            choice = int(np.argmax(grounding_target(regions, gold.boxes)))
            entities[k].boxes = [regions.boxes[choice].tolist()]
        predictions.append(Record(record.id, record.task, record.tokens, record.image_id, entities))
    return predictions


def assert_perfect(records: list[Record]) -> None:
    scores = TASK.evaluate(records, round_trip(records))
    for metric in ("gmner", "mner", "eeg"):
        assert scores[metric]["f1"] == 100.0, (metric, scores[metric])
        assert scores[metric]["gold"] == sum(len(r.entities) for r in records)


def test_target_text_and_slots():
    record = Record("1", "gmner", ["Obama", "meets", "Pak", "in", "Pak"], "img", [
        Entity(0, 1, "Obama", "PER", [[0, 0, 10, 10]]), Entity(4, 5, "Pak", "LOC", [])])
    target = TASK.linearize(record)
    assert target.text == ("Obama is a person, which is in the image [SEP] "
                           "Pak (2) is a location, which is not in the image")
    assert [target.text[a:b] for a, b in target.slots] == ["which is in the image"]
    assert target.slot_entities == [0]


def test_not_covered_entity_is_trained_as_not_in_image():
    record = Record("1", "gmner", ["Obama"], "img", [Entity(0, 1, "Obama", "PER", [[0, 0, 10, 10]])])
    assert TASK.linearize(record, groundable=[False]).text.endswith("which is not in the image")


def test_parser_counts_malformed_and_unmatched_without_crashing():
    record = Record("1", "gmner", ["Obama", "meets", "Pak"], "img", [])
    parsed = TASK.parse("Obama is a person, which is in the image [SEP] garbage [SEP] "
                        "Trump is a person, which is not in the image [SEP] Pak is a planet", record)
    assert [(e.start, e.end, e.type) for e in parsed.entities] == [(0, 1, "PER")]
    assert parsed.malformed == 2 and parsed.unmatched == 1
    assert parsed.slot_entities == [0]


def test_round_trip_synthetic_demo(tmp_path):
    build_demo(tmp_path, n_train=200, n_dev=50, n_test=50)
    for split in ("train", "dev", "test"):
        assert_perfect(read_records(tmp_path / f"{split}.jsonl"))


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_round_trip_real_gmner_v2(shared_datasets, split):
    records = build_gmner(shared_datasets / "twitter-gmner" / "Twitter10000_v2.0", split).records
    assert_perfect(records)
