"""The same-encoder baselines of bench/baselines read genie's records as genie scores them: gold
tags read back as spans score 100 with genie's MNER metric (real releases when present), and the
relation markers sit around the given pair; a stopped baseline run resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.baselines.common import arguments, fit
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



class Killed(Exception):
    pass


def tiny_fit(tmp_path: Path, killed_at: int = 0):
    """`fit` for 3 epochs on a linear model with dropout (random state to restore), 40 examples,
    batch 8; with `killed_at`, the process dies during that epoch's dev evaluation."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Dropout(0.3), torch.nn.Linear(4, 2))
    data = [(torch.randn(4), k % 2) for k in range(40)]
    dev, calls = torch.stack([x for x, _ in data[:10]]), []
    args = arguments("test").parse_args(["--data", "d", "--out", str(tmp_path / "result.json"), "--epochs", "3",
                                         "--precision", "fp32", "--learning-rate", "0.05", "--state",
                                         str(tmp_path / "state")])

    def collate(items):
        return {"x": torch.stack([x for x, _ in items]), "y": torch.tensor([y for _, y in items]),
                "attention_mask": torch.ones(len(items), 1)}

    def dev_score() -> float:
        calls.append(1)
        if len(calls) == killed_at:
            raise Killed
        return float(model(dev).sum())

    fitted = fit(model, data, collate, lambda m, inputs: torch.nn.functional.cross_entropy(m(inputs["x"]), inputs["y"]),
                 dev_score, args)
    return model, {**fitted, "evaluations_here": len(calls)}


def test_a_stopped_baseline_resumes_exactly_after_its_last_epoch(tmp_path):
    """Three epochs in one process, or killed in the third and run again: the same dev history
    and final weights."""
    whole, whole_fit = tiny_fit(tmp_path / "whole")
    with pytest.raises(Killed):
        tiny_fit(tmp_path / "parts", killed_at=3)
    resumed, resumed_fit = tiny_fit(tmp_path / "parts")
    assert resumed_fit["evaluations_here"] == 1  # only the third epoch ran again
    assert resumed_fit["dev_history"] == whole_fit["dev_history"] and len(whole_fit["dev_history"]) == 3
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
