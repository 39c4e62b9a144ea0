"""FMNERG: the three-column builder with GMNER's boxes, the TIGER target, the four scores by hand."""

from __future__ import annotations

import subprocess
import sys

import pytest
from roundtrip import assert_perfect

from genie.errors import GenieError
from genie.labels import FINE_TO_COARSE, FMNERG_TYPES
from genie.records import Entity, Record
from genie.tasks import get_task

TASK = get_task("fmnerg")
XML = ("<annotation><object><name>Ted Cruz</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax>"
       "<ymax>40</ymax></bndbox></object><object><name>Ted Cruz</name><bndbox><xmin>50</xmin><ymin>50</ymin>"
       "<xmax>90</xmax><ymax>99</ymax></bndbox></object></annotation>")
CONLL = ("IMGID:1768609\nRT\tO\tO\nTed\tB-person\tB-politician\nCruz\tI-person\tI-politician\nin\tO\tO\n"
         "Texas\tB-location\tB-state\n\n"
         "IMGID:O_4862\nSwift\tI-person\tI-musician\nat\tO\tO\nUnited\tB-building\tB-entertainment_place\n"
         "Center\tI-building\tI-entertainment_place\n")


def release(root, conll=CONLL, xml_dir=None):
    (root / "txt_fine").mkdir(parents=True)
    (root / "txt_fine" / "dev.txt").write_text(conll)
    xml_dir = xml_dir or root / "xml"
    xml_dir.mkdir(parents=True)
    (xml_dir / "1768609.xml").write_text(XML)
    return root


def test_type_inventory_is_8_coarse_51_fine():
    assert len(FMNERG_TYPES) == 8 and len(FINE_TO_COARSE) == 51 == len(TASK.labels)


def test_builder_links_boxes_and_keeps_both_types(tmp_path):
    result = get_task("fmnerg").builder(release(tmp_path), "dev")
    assert result.counts == {"tweets": 2, "entities": 4, "groundable_entities": 1, "boxes": 2, "orphan_i_tags": 1,
                             "xml_files_missing": 1, "unmatched_xml_names": 0, "unmatched_xml_objects": 0}
    first, second = result.records
    assert [(e.text, e.type, e.fine_type, e.boxes) for e in first.entities] == [
        ("Ted Cruz", "person", "politician", [[1, 2, 30, 40], [50, 50, 90, 99]]),
        ("Texas", "location", "state", [])]
    assert [(e.span, e.fine_type) for e in second.entities] == [((0, 1), "musician"), ((2, 4), "entertainment_place")]
    assert (first.id, first.task) == ("dev-1768609", "fmnerg")
    assert_perfect(TASK, result.records)


def test_xml_folder_given_apart_as_released(tmp_path):
    src = release(tmp_path / "fmnerg", xml_dir=tmp_path / "gmner_v2" / "xml")
    with pytest.raises(GenieError, match="--xml"):
        get_task("fmnerg").builder(src, "dev")
    result = get_task("fmnerg").builder(src, "dev", xml=tmp_path / "gmner_v2" / "xml")
    assert result.counts["boxes"] == 2


@pytest.mark.parametrize("cruz, after, line, problem", [
    ("Cruz\tI-person\tB-politician", "in\tO\tO", 4,
     "the coarse column continues one here, the fine one starts an entity"),
    ("Cruz\tI-person\tI-actor", "in\tO\tO", 4, "different entity spans"),  # the fine type changes: a new entity
    ("Cruz\tI-person\tI-politician", "in\tO\tB-city", 5, "the coarse column has none here"),
])
def test_columns_that_disagree_are_an_error_naming_the_line(tmp_path, cruz, after, line, problem):
    conll = CONLL.replace("Cruz\tI-person\tI-politician\nin\tO\tO", f"{cruz}\n{after}")
    with pytest.raises(GenieError, match=problem) as info:
        get_task("fmnerg").builder(release(tmp_path, conll), "dev")
    assert info.value.line == line and info.value.path.endswith("dev.txt")


def test_fine_type_under_the_wrong_coarse_type_is_an_error(tmp_path):
    conll = CONLL.replace("Texas\tB-location\tB-state", "Texas\tB-location\tB-politician")
    result = subprocess.run([sys.executable, "-m", "genie.cli", "convert", "--task", "fmnerg", "--source",
                             str(release(tmp_path, conll)), "--split", "dev", "--out", str(tmp_path / "o.jsonl")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "dev.txt:6: fine type 'politician' is not one of location's (city, country" in result.stderr


def test_target_is_tigers():
    record = Record("1", "fmnerg", ["Ted", "Cruz", "in", "Texas"], "x", [
        Entity(0, 2, "Ted Cruz", "person", [[0, 0, 5, 5]], "politician"),
        Entity(3, 4, "Texas", "location", [], "location_other")])
    assert TASK.linearize(record).text == ("Ted Cruz is a person and a politician, which is in the image [SEP] "
                                           "Texas is a location and a location other, which is not in the image")
    with pytest.raises(GenieError, match="'person/city' is not one of this task's types"):
        TASK.linearize(Record("2", "fmnerg", ["Ted"], "x", [Entity(0, 1, "Ted", "person", [], "city")]))


BOX, FAR = [0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]


def fine(start, coarse, fine_type, boxes=()):
    return Entity(start, start + 1, "", coarse, [list(b) for b in boxes], fine_type)


def rec(rid, *entities):
    return Record(rid, "fmnerg", ["w"] * 6, "x", list(entities))


def counts(score):
    return score["correct"], score["predicted"], score["gold"]


def test_four_scores_by_hand():
    gold = [rec("a", fine(0, "person", "politician", [BOX]), fine(2, "location", "city"),
                fine(4, "organization", "band", [BOX]))]
    pred = [rec("a", fine(0, "person", "athlete", [BOX]),  # right coarse, wrong fine
                fine(2, "location", "city"),  # all right, both not in the image
                fine(4, "organization", "band", [FAR]))]  # right types, wrong box
    scores = TASK.evaluate(gold, pred)
    assert counts(scores["fmnerg"]) == (1, 3, 3)
    assert counts(scores["coarse_gmner"]) == (2, 3, 3)
    assert counts(scores["fmner"]) == (2, 3, 3)
    assert counts(scores["eeg"]) == (2, 3, 3)


def test_entity_predicted_twice_with_different_boxes_and_an_empty_prediction():
    gold = [rec("a", fine(0, "person", "politician", [BOX])), rec("b", fine(1, "art", "music"))]
    pred = [rec("a", fine(0, "person", "politician", [FAR]), fine(0, "person", "politician", [BOX])), rec("b")]
    scores = TASK.evaluate(gold, pred)
    assert counts(scores["fmnerg"]) == (1, 2, 2)  # one hit, one false positive; "b" predicts nothing
    assert counts(scores["fmner"]) == (1, 2, 2)  # the same entity twice is still one hit
    empty = TASK.evaluate(gold, [rec("a"), rec("b")])["fmnerg"]
    assert counts(empty) == (0, 0, 2) and empty["f1"] == 0.0  # the gold count is not lowered


def test_real_gmner_v2_tweets_as_fmnerg_link_the_same_boxes(shared_datasets, tmp_path):
    """FMNERG shares GMNER v2.0's tweets and xml: its test split rewritten in three columns (each
    type mapped to a coarse/fine pair) must give GMNER's counts and round-trip exactly."""
    v2 = shared_datasets / "twitter-gmner" / "Twitter10000_v2.0"
    pairs = {"PER": "person-person_other", "LOC": "location-location_other",
             "ORG": "organization-organization_other", "OTHER": "product-product_other"}
    lines = []
    for line in (v2 / "txt" / "test.txt").read_text(encoding="utf-8").split("\n"):
        token, _, tag = line.rpartition("\t")
        if token and not line.startswith("IMGID:"):
            coarse, fine_type = pairs[tag[2:]].split("-") if tag != "O" else ("", "")
            line = f"{token}\t{tag}\t{tag}" if tag == "O" else f"{token}\t{tag[:2]}{coarse}\t{tag[:2]}{fine_type}"
        lines.append(line)
    (tmp_path / "txt_fine").mkdir()
    (tmp_path / "txt_fine" / "test.txt").write_text("\n".join(lines), encoding="utf-8")
    result = get_task("fmnerg").builder(tmp_path, "test", xml=v2 / "xml")
    counts = result.counts
    assert (counts["tweets"], counts["entities"], counts["groundable_entities"], counts["boxes"]) == \
        (1500, 2543, 1046, 1254)
    assert_perfect(TASK, result.records)
