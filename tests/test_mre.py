"""MRE: the MNRE builder, the marked source and relation target, the metric by hand, real data."""

from __future__ import annotations

import subprocess
import sys

import pytest
from roundtrip import assert_perfect

from genie.errors import GenieError
from genie.records import Entity, Record, Relation
from genie.tasks import get_task

TASK = get_task("mre")
LINES = [
    "{'token': ['Obama', 'joins', 'Acme', 'today'], 'h': {'name': 'Obama', 'pos': [0, 1]}, "
    "'t': {'name': 'Acme', 'pos': [2, 3]}, 'img_id': 'img_1.jpg', 'relation': '/per/org/member_of'}",
    "{'token': ['Obama', 'joins', 'Acme', 'today'], 'h': {'name': 'Acme', 'pos': [2, 3]}, "
    "'t': {'name': 'Obama', 'pos': [0, 1]}, 'img_id': 'img_1.jpg', 'relation': 'None'}",
    "{'token': ['New', 'York', 'rocks'], 'h': {'name': 'NY', 'pos': [0, 2]}, "
    "'t': {'name': 'York', 'pos': [1, 2]}, 'img_id': 'img_2.jpg', 'relation': '/loc/loc/contain'}",
]


def release(root, lines=LINES, name="mnre_val .txt"):
    folder = root / "mnre_txt"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")
    return root


def pair(relation: str | None, head_type="per", tail_type="org", rid="1") -> Record:
    entities = [Entity(0, 1, "Obama", head_type), Entity(2, 3, "Acme", tail_type)]
    return Record(rid, "mre", ["Obama", "joins", "Acme"], "x", entities,
                  [Relation(0, 1, relation)] if relation else [])


def test_builder_reads_the_dev_file_with_a_space_in_its_name(tmp_path):
    result = get_task("mre").builder(release(tmp_path), "dev")
    assert result.counts == {"instances": 3, "relations": 2, "none": 1, "labels": 3, "names_not_matching_tokens": 1}
    first, none, nested = result.records
    assert (first.id, first.image_id, first.task) == ("dev-1", "img_1", "mre")
    assert [(e.span, e.type) for e in first.entities] == [((0, 1), "per"), ((2, 3), "org")]
    assert first.relations == [Relation(0, 1, "/per/org/member_of")]
    assert [e.type for e in none.entities] == ["unknown", "unknown"] and none.relations == []
    assert nested.entities[0].text == "New York"  # the tokens win over a 'name' that differs; counted
    assert_perfect(TASK, result.records)


def test_source_marks_head_and_tail_even_when_they_overlap(tmp_path):
    first, none, nested = get_task("mre").builder(release(tmp_path), "dev").records
    assert TASK.source_text(first) == "[h] Obama [/h] joins [t] Acme [/t] today"
    assert TASK.source_text(none) == "[t] Obama [/t] joins [h] Acme [/h] today"
    assert TASK.source_text(nested) == "[h] New [t] York [/h] [/t] rocks"


def test_target_words_and_parser():
    assert TASK.linearize(pair("/per/org/member_of")).text == "person member of organization"
    assert TASK.linearize(pair(None)).text == "none"
    parsed = TASK.parse(" person member of organization ", pair(None))
    assert parsed.relations == [Relation(0, 1, "/per/org/member_of")] and parsed.malformed == 0
    assert [e.type for e in parsed.entities] == ["per", "org"]
    garbage = TASK.parse("person married a rock", pair("/per/org/member_of"))
    assert garbage.relations == [] and garbage.malformed == 1


def test_a_record_without_two_entities_is_a_clear_error():
    record = Record("r9", "mre", ["a"], "x", [Entity(0, 1, "a", "per")])
    with pytest.raises(GenieError, match="'r9'.*exactly 2 entities"):
        TASK.source_text(record)


def test_metric_by_hand():
    gold = [pair("/per/org/member_of", rid="1"), pair(None, rid="2"), pair("/per/per/peer", rid="3"),
            pair("/loc/loc/contain", rid="4")]
    pred = [pair("/per/org/member_of", rid="1"),
            pair("/per/per/peer", rid="2"),  # a relation where there is none: a false positive
            pair("None", rid="3")]  # None predicted: no prediction, so only a miss; record 4 missing
    scores = TASK.evaluate(gold, pred)
    mre = scores["mre"]
    assert (mre["correct"], mre["predicted"], mre["gold"]) == (1, 2, 3)
    assert mre["precision"] == 50.0 and mre["recall"] == pytest.approx(100 / 3) and mre["f1"] == pytest.approx(40.0)
    assert scores["accuracy"] == 25.0 and scores["missing_predictions"] == 1
    per = {k: (v["correct"], v["predicted"], v["gold"]) for k, v in scores["per_relation"].items()}
    assert per == {"/per/org/member_of": (1, 1, 1), "/per/per/peer": (0, 1, 1), "/loc/loc/contain": (0, 0, 1)}


def test_metric_empty_prediction_and_duplicate_relation():
    gold = [pair("/per/org/member_of", rid="1"), pair(None, rid="2")]
    empty = TASK.evaluate(gold, [pair(None, rid="1"), pair(None, rid="2")])
    assert (empty["mre"]["predicted"], empty["mre"]["gold"], empty["mre"]["f1"]) == (0, 1, 0.0)
    assert empty["accuracy"] == 50.0
    twice = pair("/per/org/member_of", rid="1")
    twice.relations.append(Relation(0, 1, "/per/org/member_of"))
    with pytest.raises(GenieError, match="at most one relation"):
        TASK.evaluate(gold, [twice])


def test_a_bad_line_is_one_clear_error(tmp_path):
    src = release(tmp_path, [LINES[0], "{'token': ['a'], 'h': {'pos': [0, 5]}}"], name="mnre_test.txt")
    result = subprocess.run([sys.executable, "-m", "genie.cli", "convert", "--task", "mre", "--source", str(src),
                             "--split", "test", "--out", str(tmp_path / "out.jsonl")], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{src / 'mnre_txt' / 'mnre_test.txt'}:2: missing key t, img_id, relation" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("split, instances, relations, labels", [
    ("train", 12247, 4503, 23), ("dev", 1624, 624, 23), ("test", 1614, 640, 21)])
def test_real_mnre_counts_and_round_trip(shared_datasets, split, instances, relations, labels):
    result = get_task("mre").builder(shared_datasets / "mnre", split)
    assert (result.counts["instances"], result.counts["relations"], result.counts["labels"]) == \
        (instances, relations, labels)
    assert result.counts["names_not_matching_tokens"] == 0
    scores = assert_perfect(TASK, result.records)
    assert scores["mre"]["gold"] == relations
