"""The counting rules that make genie's scores comparable with the published ones
(docs/decoding-and-evaluation.md): unreadable generations count as wrong predictions, "in the
image" without a box is not "not in the image", JMERE is scored with and without direction, and
`genie evaluate` refuses what it cannot score honestly."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
from demo_sets import small_demos
from roundtrip import round_trip

from genie.records import Entity, Record, Relation, read_records, write_records
from genie.tasks import TASKS, get_task


def evaluate(task: str, gold, pred) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genie.cli", "evaluate", "--task", task, "--gold", str(gold),
                           "--pred", str(pred)], capture_output=True, text=True)


def scores(task: str, gold, pred) -> dict:
    result = evaluate(task, gold, pred)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> dict[str, list[Record]]:
    out = small_demos(tmp_path_factory.mktemp("demos"), n_train=10, n_dev=10, n_test=60)
    return {name: read_records(out / name / "test.jsonl") for name in TASKS}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_unreadable_predictions_lower_precision_by_exactly_their_number(name, demos, tmp_path):
    """The same predictions, with unreadable parts on some records, read back from a file by
    `genie evaluate`: every counted score has exactly that many more predictions, none more
    correct, so precision falls to correct / (predicted + unreadable) and recall stays."""
    task, gold = get_task(name), demos[name]
    readable = round_trip(task, gold)
    # MRE holds one relation per record: an unreadable one replaces the prediction, so mark
    # records whose prediction was None (a None prediction is no prediction).
    marked = [k for k, g in enumerate(gold) if k % 4 == 0 and (not task.classifies_pair or not g.relations)]
    per_record = 1 if task.classifies_pair else 2
    unreadable = [replace(p, unreadable=per_record) if k in marked else p for k, p in enumerate(readable)]
    for file, records in (("gold", gold), ("readable", readable), ("unreadable", unreadable)):
        write_records(tmp_path / f"{file}.jsonl", records)
    assert all(r.unreadable == per_record for k, r in enumerate(read_records(tmp_path / "unreadable.jsonl"))
               if k in marked)
    before = scores(name, tmp_path / "gold.jsonl", tmp_path / "readable.jsonl")
    after = scores(name, tmp_path / "gold.jsonl", tmp_path / "unreadable.jsonl")
    added = per_record * len(marked)
    assert added > 0
    # Every score counts every predicted unit but those the task names readable-only (JMERE's
    # entity score: an unreadable clause has no entities).
    counted = [key for key, value in before.items() if isinstance(value, dict) and "predicted" in value
               and key not in task.readable_only]
    assert name in counted
    for key in counted:
        assert after[key]["predicted"] == before[key]["predicted"] + added, key
        assert (after[key]["correct"], after[key]["gold"]) == (before[key]["correct"], before[key]["gold"]), key
        assert after[key]["precision"] == pytest.approx(100.0 * after[key]["correct"] / after[key]["predicted"])
        assert after[key]["precision"] < before[key]["precision"] and after[key]["recall"] == before[key]["recall"]
    if task.classifies_pair:  # an unreadable answer to a None pair is a wrong answer
        assert after["accuracy"] == pytest.approx(before["accuracy"] - 100.0 * len(marked) / len(gold))
    for key in task.readable_only:
        assert after[key] == before[key]
    if "as_hindex" in before:  # H-Index's counting keeps one prediction per span: unreadable ones still count
        for key in before["as_hindex"]:
            assert after["as_hindex"][key]["predicted"] == before["as_hindex"][key]["predicted"] + added


def gmner(*entities: Entity, tokens: tuple[str, ...] = ("Obama", "in", "Pak"), rid: str = "1") -> Record:
    return Record(rid, "gmner", list(tokens), "img", list(entities))


@pytest.mark.parametrize("gold_boxes", [[], [[0, 0, 10, 10]]], ids=["ungroundable-gold", "groundable-gold"])
def test_in_the_image_without_a_box_matches_no_grounding(gold_boxes, tmp_path):
    """A prediction that said "in the image" but got no box (all regions masked) keeps saying
    so: it is never a correct "not in the image", nor a box; its span and type still count."""
    pred = gmner(Entity(2, 3, "Pak", "LOC", [], in_image=True))
    assert Record.from_dict(json.loads(json.dumps(pred.to_dict()))) == pred
    write_records(tmp_path / "gold.jsonl", [gmner(Entity(2, 3, "Pak", "LOC", gold_boxes))])
    write_records(tmp_path / "pred.jsonl", [pred])
    out = scores("gmner", tmp_path / "gold.jsonl", tmp_path / "pred.jsonl")
    assert (out["gmner"]["correct"], out["eeg"]["correct"], out["mner"]["correct"]) == (0, 0, 1)
    # Without the flag the same prediction is "not in the image", right against ungroundable gold.
    write_records(tmp_path / "pred.jsonl", [gmner(Entity(2, 3, "Pak", "LOC", []))])
    assert scores("gmner", tmp_path / "gold.jsonl", tmp_path / "pred.jsonl")["gmner"]["correct"] == int(not gold_boxes)


def test_in_image_false_with_boxes_is_a_contradiction(tmp_path):
    line = {**gmner(Entity(2, 3, "Pak", "LOC", [[0, 0, 5, 5]])).to_dict()}
    line["entities"][0]["in_image"] = False
    (tmp_path / "pred.jsonl").write_text(json.dumps(line) + "\n")
    write_records(tmp_path / "gold.jsonl", [gmner()])
    result = evaluate("gmner", tmp_path / "gold.jsonl", tmp_path / "pred.jsonl")
    assert result.returncode == 2 and f"{tmp_path / 'pred.jsonl'}:1" in result.stderr
    assert "in_image false" in result.stderr


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_evaluate_refuses_records_of_another_task(demos, tmp_path):
    write_records(tmp_path / "gold.jsonl", demos["gmner"])
    write_records(tmp_path / "pred.jsonl", round_trip(get_task("gmner"), demos["gmner"]))
    assert_refused(evaluate("fmnerg", tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"),
                   f"gold record {demos['gmner'][0].id!r} is a gmner record", "--task gmner")
    mixed = [replace(demos["gmner"][0], task="mner"), *demos["gmner"][1:]]
    write_records(tmp_path / "pred.jsonl", mixed)
    assert_refused(evaluate("gmner", tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"),
                   f"predicted record {mixed[0].id!r} is a mner record")


def test_evaluate_refuses_predictions_of_other_tokens(tmp_path):
    write_records(tmp_path / "gold.jsonl", [gmner(), gmner(rid="2")])
    write_records(tmp_path / "pred.jsonl", [gmner(), gmner(tokens=("Obama", "in", "Paris"), rid="2")])
    assert_refused(evaluate("gmner", tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"),
                   "predicted record '2' has other tokens")


@pytest.mark.parametrize("side", ["gold", "predicted"])
@pytest.mark.parametrize("box", [[5, 0, 5, 10], [0, 10, 10, 2]], ids=["no-width", "upside-down"])
def test_evaluate_refuses_a_box_without_area(side, box, tmp_path):
    good = gmner(Entity(2, 3, "Pak", "LOC", [[0, 0, 10, 10]]))
    bad = gmner(Entity(2, 3, "Pak", "LOC", [box]))
    write_records(tmp_path / "gold.jsonl", [bad if side == "gold" else good])
    write_records(tmp_path / "pred.jsonl", [bad if side == "predicted" else good])
    assert_refused(evaluate("gmner", tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"),
                   f"{side} record '1'", "no area", str(box))


def test_jmere_is_scored_directed_and_undirected():
    """EEGA's code emits both directions of each pair: its published F1 is the undirected one."""
    tokens = ["Obama", "and", "Michelle", "in", "Pak"]
    people = [Entity(0, 1, "Obama", "per"), Entity(2, 3, "Michelle", "per")]
    gold = [Record("1", "jmere", tokens, "i", people, [Relation(0, 1, "couple")])]
    reversed_pair = [Record("1", "jmere", tokens, "i", people, [Relation(1, 0, "couple")])]
    out = get_task("jmere").evaluate(gold, reversed_pair)
    assert (out["jmere"]["correct"], out["jmere"]["predicted"], out["jmere"]["gold"]) == (0, 1, 1)
    assert (out["jmere_undirected"]["correct"], out["jmere_undirected"]["f1"]) == (1, 100.0)
    both = [Record("1", "jmere", tokens, "i", people, [Relation(0, 1, "couple"), Relation(1, 0, "couple")])]
    out = get_task("jmere").evaluate(gold, both)  # a pair predicted both ways is one hit, one false positive
    assert (out["jmere_undirected"]["correct"], out["jmere_undirected"]["predicted"]) == (1, 2)
    assert (out["jmere"]["correct"], out["jmere"]["predicted"]) == (1, 2)


@pytest.mark.parametrize("order", [1, -1], ids=["good-box-first", "good-box-last"])
def test_gmner_is_also_counted_as_hindex_counts_duplicates(order):
    """genie matches one to one (a duplicate is a false positive); H-Index's metric keeps the last
    prediction of each span. Both are reported; H-Index's table counted its way."""
    gold = [gmner(Entity(2, 3, "Pak", "LOC", [[0, 0, 10, 10]]))]
    twice = [Entity(2, 3, "Pak", "LOC", [[0, 0, 10, 10]]), Entity(2, 3, "Pak", "LOC", [[50, 50, 60, 60]])][::order]
    out = get_task("gmner").evaluate(gold, [gmner(*twice)])
    assert (out["gmner"]["correct"], out["gmner"]["predicted"]) == (1, 2)
    assert (out["as_hindex"]["gmner"]["correct"], out["as_hindex"]["gmner"]["predicted"]) == (int(order == -1), 1)
    assert (out["as_hindex"]["mner"]["correct"], out["as_hindex"]["mner"]["predicted"]) == (1, 1)


def test_mner_is_also_counted_as_hindex_counts_duplicates():
    tokens = "NBA is back".split()
    gold = [Record("1", "mner", tokens, "i", [Entity(0, 1, "NBA", "ORG")])]
    twice = [Record("1", "mner", tokens, "i", [Entity(0, 1, "NBA", "ORG"), Entity(0, 1, "NBA", "PER")])]
    out = get_task("mner").evaluate(gold, twice)
    assert (out["mner"]["correct"], out["mner"]["predicted"]) == (1, 2)
    assert (out["as_hindex"]["mner"]["correct"], out["as_hindex"]["mner"]["predicted"]) == (0, 1)  # the last wins
