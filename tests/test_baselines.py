"""The same-encoder baselines of bench/baselines read genie's records as genie scores them: gold
tags read back as spans score 100 with genie's MNER metric (real releases when present), and the
relation markers sit around the given pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.baselines.relation import MARKERS, MRE_TASK
from bench.baselines.tagger import bio_tags, spans
from genie.eval.mner import evaluate_mner
from genie.records import Entity, Record
from genie.tasks import get_task

REPO = Path(__file__).resolve().parents[1]


def tags_read_back(records: list[Record]) -> list[Record]:
    return [Record(r.id, r.task, r.tokens, r.image_id, spans(bio_tags(r), r.tokens)) for r in records]


def test_bio_tags_read_back_as_the_same_entities():
    record = Record("1", "mner", "New York Knicks beat Boston".split(), "x",
                    [Entity(0, 3, "New York Knicks", "ORG"), Entity(4, 5, "Boston", "LOC")])
    assert bio_tags(record) == ["B-ORG", "I-ORG", "I-ORG", "O", "B-LOC"]
    assert evaluate_mner([record], tags_read_back([record]))["mner"]["f1"] == 100.0
    # conlleval's reading: an I- tag after another type starts an entity
    assert [(e.span, e.type) for e in spans(["I-PER", "I-LOC", "O"], ["a", "b", "c"])] == [((0, 1), "PER"),
                                                                                         ((1, 2), "LOC")]


@pytest.mark.parametrize("folder", ["twitter2015", "twitter2017"])
def test_real_test_splits_read_back_at_100(shared_datasets, folder):
    records = get_task("mner").builder(shared_datasets / "twitter-mner" / "data" / folder, "test").records
    assert evaluate_mner(records, tags_read_back(records))["mner"]["f1"] == 100.0


def test_markers_surround_head_and_tail():
    """The classifier reads genie's own MRE source, whose markers it adds as special tokens."""
    record = Record("1", "mre", "UN says Libya talks".split(), "x",
                    [Entity(0, 1, "UN", "org"), Entity(2, 4, "Libya talks", "misc")])
    assert MRE_TASK.source_text(record) == "[h] UN [/h] says [t] Libya talks [/t]"
    assert set(MRE_TASK.source_text(record).split()) >= set(MARKERS)
