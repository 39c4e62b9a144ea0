"""GMNER builder: box linking on a synthetic release, the published v2.0 counts, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from genie.data_builders import BuildResult
from genie.data_builders.gmner import build_gmner
from genie.errors import GenieError
from genie.records import Entity, Record
from genie.tasks import get_task

TRAIN_TXT = """IMGID:1
Messi\tB-PER
and\tO
Messi\tB-PER
&amp\tO
;\tO
Lionel\tB-PER
Messi\tI-PER
at\tO
Camp\tB-LOC
Nou\tI-LOC

IMGID:2
Paris\tI-LOC
is\tO
nice\tO

IMGID:O_3
Obama\tB-PER
"""


def voc(*objects: tuple[str, tuple[int, int, int, int]]) -> str:
    """A Pascal-VOC annotation in the layout of the real files."""
    parts = [f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<bndbox>\n"
             + "".join(f"\t\t\t<{k}>{v}</{k}>\n" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
             + "\t\t</bndbox>\n\t</object>\n" for name, box in objects]
    return "<annotation>\n\t<size>\n\t\t<width>500</width>\n\t\t<height>400</height>\n\t</size>\n" \
        + "".join(parts) + "</annotation>\n"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    (tmp_path / "txt").mkdir()
    (tmp_path / "xml").mkdir()
    (tmp_path / "txt" / "train.txt").write_text(TRAIN_TXT, encoding="utf-8")
    (tmp_path / "xml" / "1.xml").write_text(voc(
        ("Messi", (10, 20, 110, 220)),
        ("Camp Nou", (0, 0, 500, 200)),
        ("Camp Nou", (300, 100, 480, 390)),
        ("Ronaldo", (1, 2, 3, 4)),  # matches no entity
    ), encoding="utf-8")
    (tmp_path / "xml" / "O_3.xml").write_text(voc(("obama", (5, 5, 50, 50))), encoding="utf-8")  # case differs
    return tmp_path


def test_synthetic_release_gives_exact_records_and_counts(release):
    result = build_gmner(release, "train")
    messi = [[10, 20, 110, 220]]
    tokens1 = ["Messi", "and", "Messi", "&amp", ";", "Lionel", "Messi", "at", "Camp", "Nou"]
    assert result.records == [
        Record("train-1", "gmner", tokens1, "1", [
            Entity(0, 1, "Messi", "PER", messi),
            Entity(2, 3, "Messi", "PER", messi),  # a repeated name gets the same boxes
            Entity(5, 7, "Lionel Messi", "PER", []),  # no partial match
            Entity(8, 10, "Camp Nou", "LOC", [[0, 0, 500, 200], [300, 100, 480, 390]]),
        ]),
        Record("train-2", "gmner", ["Paris", "is", "nice"], "2", [Entity(0, 1, "Paris", "LOC", [])]),
        Record("train-O_3", "gmner", ["Obama"], "O_3", [Entity(0, 1, "Obama", "PER", [])]),
    ]
    assert result.counts == {"tweets": 3, "entities": 6, "groundable_entities": 3, "boxes": 4,
                             "orphan_i_tags": 1, "xml_files_missing": 1,
                             "unmatched_xml_names": 2, "unmatched_xml_objects": 2}


def test_repeated_entities_do_not_share_box_lists(release):
    first, second = build_gmner(release, "train").records[0].entities[:2]
    first.boxes[0][0] = -1
    assert second.boxes == [[10, 20, 110, 220]]


def test_registry_holds_gmner():
    assert get_task("gmner").builder is build_gmner


def test_unknown_split(release):
    with pytest.raises(GenieError, match="unknown split 'valid'"):
        build_gmner(release, "valid")


def test_broken_xml_names_file_and_line(release):
    broken = release / "xml" / "2.xml"
    broken.write_text("<annotation>\n\t<object>\n\t\t<name>Paris</name>\n</annotation>\n", encoding="utf-8")
    with pytest.raises(GenieError) as info:
        build_gmner(release, "train")
    message = str(info.value)
    assert message.startswith(f"{broken}:4: not valid XML (mismatched tag") and "\n" not in message


def test_non_integer_box_names_file(release):
    (release / "xml" / "2.xml").write_text(voc(("Paris", (1, 2, 3, 4))).replace("<xmax>3<", "<xmax>3.5<"))
    with pytest.raises(GenieError, match=r"2\.xml: <object> 'Paris' needs integer"):
        build_gmner(release, "train")


def test_malformed_conll_names_file_and_line(release):
    txt = release / "txt" / "train.txt"
    txt.write_text(TRAIN_TXT.replace("is\tO", "is\tO\tO"), encoding="utf-8")
    with pytest.raises(GenieError) as info:
        build_gmner(release, "train")
    message = str(info.value)
    assert message.startswith(f"{txt}:15: expected 2 tab-separated columns") and "\n" not in message


V2_COUNTS = {  # tweets / entities / groundable entities / boxes, as published
    "train": (7000, 11779, 4733, 5723),
    "dev": (1500, 2450, 991, 1171),
    "test": (1500, 2543, 1046, 1254),
}


@pytest.mark.parametrize("split", V2_COUNTS)
def test_real_v2_counts(shared_datasets, split):
    result = build_gmner(shared_datasets / "twitter-gmner" / "Twitter10000_v2.0", split)
    c = result.counts
    assert (c["tweets"], c["entities"], c["groundable_entities"], c["boxes"]) == V2_COUNTS[split]
    assert c["unmatched_xml_names"] == 0 and c["orphan_i_tags"] == 0
    assert len({r.id for r in result.records}) == len(result.records)


@pytest.mark.parametrize("split", V2_COUNTS)
def test_real_v1_counts_are_consistent(shared_datasets, split):
    result: BuildResult = build_gmner(shared_datasets / "twitter-gmner" / "Twitter10000", split)
    c, entities = result.counts, [e for r in result.records for e in r.entities]
    assert c["tweets"] == len(result.records) == V2_COUNTS[split][0]  # same tweets as v2.0
    assert c["entities"] == len(entities)
    assert c["groundable_entities"] == sum(e.groundable for e in entities) < c["entities"]
    assert c["boxes"] == sum(len(e.boxes) for e in entities) >= c["groundable_entities"]
    assert 0 < c["unmatched_xml_names"] <= c["unmatched_xml_objects"]  # v1 has names matching no entity
