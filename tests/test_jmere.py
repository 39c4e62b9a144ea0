"""JMERE: the JSON release and the MNRE derivation, the triple target, the metric by hand, real data."""

from __future__ import annotations

import json

import pytest
from roundtrip import assert_perfect

from genie.errors import GenieError
from genie.records import Entity, Record, Relation
from genie.tasks import get_task

TASK = get_task("jmere")
TOKENS = ["Obama", "joins", "Acme", "in", "Pak", "with", "Obama"]


def ent(name: str, pos: list[int], tags: str) -> dict:
    return {"name": name, "pos": pos, "tags": tags}


ITEM = {"token": TOKENS, "img_id": "55.jpg", "label_list": [
    [{"beg_ent": ent("Obama", [0, 1], "per"), "sec_ent": ent("Acme", [2, 3], "org"), "relation": "member_of"}],
    {"beg_ent": ent("Acme", [2, 3], "org"), "sec_ent": ent("Pak", [4, 5], "loc"), "relation": "locate_at"},
    {"beg_ent": ent("Obama", [0, 1], "per"), "sec_ent": ent("Acme", [2, 3], "org"), "relation": "member_of"},
]}


def mnre_line(tokens, h, t, img, relation):
    return repr({"token": tokens, "h": {"name": " ".join(tokens[h[0]:h[1]]), "pos": h},
                 "t": {"name": " ".join(tokens[t[0]:t[1]]), "pos": t}, "img_id": img, "relation": relation})


def test_json_release_array_with_wrapped_labels(tmp_path):
    (tmp_path / "val.json").write_text(json.dumps([ITEM]))
    result = get_task("jmere").builder(tmp_path, "dev")
    assert result.counts == {"sentences": 1, "triples": 2, "entities": 3, "duplicate_triples": 1,
                             "self_relations": 0, "spans_with_two_types": 0}
    (record,) = result.records
    assert (record.id, record.image_id, record.task) == ("dev-1", "55", "jmere")
    assert [(e.span, e.type) for e in record.entities] == [((0, 1), "per"), ((2, 3), "org"), ((4, 5), "loc")]
    assert record.relations == [Relation(0, 1, "member_of"), Relation(1, 2, "locate_at")]
    assert_perfect(TASK, result.records)


def test_json_lines_release_and_a_bad_label(tmp_path):
    bad = {**ITEM, "label_list": [{"beg_ent": ent("Obama", [0, 1], "person"), "sec_ent": ent("Acme", [2, 3], "org"),
                                   "relation": "member_of"}]}
    (tmp_path / "test.json").write_text(json.dumps(ITEM) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(GenieError, match=r"test.json: line 2: label 1: entity 'tags' must be one of per"):
        get_task("jmere").builder(tmp_path, "test")


def test_derived_from_mnre_groups_a_sentence_wherever_its_lines_are(tmp_path):
    other = ["Kabul", "rocks"]
    lines = [mnre_line(TOKENS, [0, 1], [2, 3], "55.jpg", "/per/org/member_of"),
             mnre_line(TOKENS, [2, 3], [0, 1], "55.jpg", "None"),
             mnre_line(other, [0, 1], [1, 2], "56.jpg", "None"),  # a sentence with no relation: dropped
             mnre_line(TOKENS, [6, 7], [4, 5], "55.jpg", "/per/loc/place_of_residence"),
             mnre_line(TOKENS, [0, 1], [2, 3], "99.jpg", "/per/org/member_of")]  # same words, other image
    (tmp_path / "mnre_txt").mkdir()
    (tmp_path / "mnre_txt" / "mnre_train.txt").write_text("\n".join(lines) + "\n")
    result = get_task("jmere").builder(tmp_path, "train")
    assert result.counts == {"mnre_lines": 5, "none_lines": 2, "sentences_without_relation": 1, "sentences": 2,
                             "triples": 3, "entities": 6, "duplicate_triples": 0, "self_relations": 0,
                             "spans_with_two_types": 0}
    first, second = result.records
    assert (first.id, first.image_id, second.id, second.image_id) == ("train-1", "55", "train-5", "99")
    assert [(e.span, e.type) for e in first.entities] == [((0, 1), "per"), ((2, 3), "org"), ((6, 7), "per"),
                                                          ((4, 5), "loc")]
    assert first.relations == [Relation(0, 1, "member_of"), Relation(2, 3, "place_of_residence")]
    assert_perfect(TASK, result.records)


def test_target_names_a_repeated_mention_by_its_occurrence():
    record = Record("1", "jmere", TOKENS, "x",
                    [Entity(6, 7, "Obama", "per"), Entity(4, 5, "Pak", "loc"), Entity(2, 3, "Acme", "org")],
                    [Relation(0, 1, "place_of_residence"), Relation(2, 1, "locate_at")])
    target = TASK.linearize(record).text
    assert target == ("Acme is an organization, locate at, Pak is a location [SEP] "
                      "Obama (2) is a person, place of residence, Pak is a location")
    parsed = TASK.parse(target, record)
    assert [(e.span, e.type) for e in parsed.entities] == [((2, 3), "org"), ((4, 5), "loc"), ((6, 7), "per")]
    assert parsed.relations == [Relation(0, 1, "locate_at"), Relation(2, 1, "place_of_residence")]


def test_parser_counts_what_it_cannot_read():
    record = Record("1", "jmere", TOKENS, "x")
    parsed = TASK.parse("Obama is a person, member of, Acme is an organization [SEP] nonsense [SEP] "
                        "Trump is a person, member of, Acme is an organization [SEP] "
                        "Obama is a person, peer, Obama is a person", record)
    assert parsed.relations == [Relation(0, 1, "member_of")]
    assert (parsed.malformed, parsed.unmatched) == (2, 1)  # nonsense, a self relation; Trump


def triple(head, head_type, relation, tail, tail_type):
    return head, head_type, relation, tail, tail_type


def record(rid: str, *triples) -> Record:
    entities: dict = {}
    relations = []
    for head, head_type, relation, tail, tail_type in triples:
        h = entities.setdefault((head, head_type), len(entities))
        t = entities.setdefault((tail, tail_type), len(entities))
        relations.append(Relation(h, t, relation))
    return Record(rid, "jmere", TOKENS, "x", [Entity(s, e, "", k) for (s, e), k in entities], relations)


A, B, C = (0, 1), (2, 3), (4, 5)


def test_metric_by_hand_duplicates_none_and_derived_entities():
    gold = [record("1", triple(A, "per", "member_of", B, "org"), triple(A, "per", "place_of_residence", C, "loc")),
            record("2", triple(A, "per", "peer", C, "per"))]
    pred = [record("1", triple(A, "per", "member_of", B, "org"), triple(A, "per", "member_of", B, "org"),
                   triple(A, "per", "member_of", C, "org"), triple(B, "org", "None", C, "loc")),
            record("2")]  # an empty prediction
    scores = TASK.evaluate(gold, pred)
    jmere, entity = scores["jmere"], scores["entity"]
    assert (jmere["correct"], jmere["predicted"], jmere["gold"]) == (1, 3, 3)  # duplicate = 1 hit + 1 FP
    assert jmere["precision"] == pytest.approx(100 / 3) and jmere["recall"] == pytest.approx(100 / 3)
    # entities named by triples: gold {A per, B org, C loc} + {A per, C per}; predicted {A per, B org, C org}
    assert (entity["correct"], entity["predicted"], entity["gold"]) == (2, 3, 5)
    assert scores["missing_predictions"] == 0


def test_metric_missing_record_predicts_nothing():
    gold = [record("1", triple(A, "per", "member_of", B, "org"))]
    scores = TASK.evaluate(gold, [])
    assert (scores["jmere"]["predicted"], scores["jmere"]["gold"], scores["missing_predictions"]) == (0, 1, 1)


@pytest.mark.parametrize("split, sentences, triples", [("train", 3468, 4503), ("dev", 473, 624), ("test", 460, 640)])
def test_real_mnre_derived_jmere_round_trip(shared_datasets, split, sentences, triples):
    result = get_task("jmere").builder(shared_datasets / "mnre", split)
    assert (result.counts["sentences"], result.counts["triples"]) == (sentences, triples)
    assert result.counts["duplicate_triples"] == result.counts["spans_with_two_types"] == 0
    scores = assert_perfect(TASK, result.records)
    assert scores["jmere"]["gold"] == triples


def test_a_span_outside_the_tokens_names_the_item_and_label(tmp_path):
    bad = {**ITEM, "label_list": [{"beg_ent": ent("Obama", [0, 9], "per"), "sec_ent": ent("Acme", [2, 3], "org"),
                                   "relation": "member_of"}]}
    (tmp_path / "val.json").write_text(json.dumps([ITEM, bad]))
    with pytest.raises(GenieError, match=r"val.json: item 2: label 1: entity: 'pos' must be \[start, end\) "
                                         r"inside the 7 tokens, got \[0, 9\]"):
        get_task("jmere").builder(tmp_path, "dev")
