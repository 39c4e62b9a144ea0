"""gold -> target -> parse -> evaluate must give exactly 100 F1, on fixtures and real data."""

from __future__ import annotations

import pytest
from roundtrip import assert_perfect

from genie.data_builders.gmner import build_gmner
from genie.demo import build_demo
from genie.records import Entity, Record, read_records
from genie.tasks import get_task

TASK = get_task("gmner")


def assert_gmner_perfect(records: list[Record]) -> None:
    scores = assert_perfect(TASK, records)
    assert set(scores) >= {"gmner", "mner", "eeg"}
    assert scores["gmner"]["gold"] == sum(len(r.entities) for r in records)


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
    build_demo(tmp_path, TASK.demo, n_train=200, n_dev=50, n_test=50)
    for split in ("train", "dev", "test"):
        assert_gmner_perfect(read_records(tmp_path / f"{split}.jsonl"))


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_round_trip_real_gmner_v2(shared_datasets, split):
    records = build_gmner(shared_datasets / "twitter-gmner" / "Twitter10000_v2.0", split).records
    assert_gmner_perfect(records)
