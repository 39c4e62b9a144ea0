"""MORE: the release's layout converted (boxes into pixels, the negative label into None, hostile
files refused), and gold -> target -> parse -> score at 100 over the labels a run takes from its
data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from genie.errors import GenieError
from genie.labels import NO_RELATION
from genie.records import GivenObject, Relation, read_records
from genie.tasks import get_task

MORE = get_task("more")
LINES = [
    {"token": ["Obama", "holds", "it"], "h": {"name": "Obama", "pos": [0, 1]}, "t": {"name": "cup"},
     "img_id": "a.jpg", "relation": "/per/obj/holds"},
    {"token": ["a", "Red", "Sox", "cap"], "h": {"name": "Red Sox", "pos": [1, 3]}, "t": {"name": "cap"},
     "img_id": "b.jpg", "relation": "NA"},
    {"token": ["Kraido", "again"], "h": {"name": "Kraido", "pos": [0, 1]}, "t": {"name": "cup"},
     "img_id": "gone.jpg", "relation": "/per/obj/holds"},
    {"token": ["Brelo", "waves"], "h": {"name": "Brelo", "pos": [0, 1]}, "t": {"name": "dog"},
     "img_id": "a.jpg", "relation": "/per/obj/wears"},
]


def write_release(root, lines=LINES, split="train", boxes=None):
    (root / "txt").mkdir(parents=True, exist_ok=True)
    (root / "txt" / f"{split}.txt").write_text("\n".join(repr(line) for line in lines) + "\n")  # Python dicts
    (root / "rel2id.json").write_text(json.dumps({"NA": 0, "/per/obj/holds": 1, "/per/obj/wears": 2}) + "\n")
    torch.save(boxes if boxes is not None else
               {"a.jpg": {"cup": [0.5, 0.5, 0.2, 0.4]}, "b.jpg": {"cap": torch.tensor([0.25, 0.25, 0.5, 0.5])}},
               root / f"ent_{split}_dict.pth")
    (root / "img_org" / split).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (100, 200)).save(root / "img_org" / split / "a.jpg")
    Image.new("RGB", (40, 40)).save(root / "img_org" / split / "b.jpg")
    return root


def test_the_release_converts_to_records(tmp_path):
    result = MORE.builder(write_release(tmp_path), "train")
    first, second = result.records
    assert first.image_id == "a" and first.tokens == ["Obama", "holds", "it"]
    assert [(e.span, e.text) for e in first.entities] == [((0, 1), "Obama")]
    assert first.objects == [GivenObject("cup", (40.0, 60.0, 60.0, 140.0))]  # cx .5 w .2 of 100, cy .5 h .4 of 200
    assert first.relations == [Relation(0, 0, "/per/obj/holds", tail_object=True)]
    assert second.objects == [GivenObject("cap", (0.0, 0.0, 20.0, 20.0))] and second.relations == []  # NA: None
    assert result.counts == {"instances": 2, "relations": 1, "none": 1, "labels": 2, "release_relations": 3,
                             "left_out_no_image": 1, "left_out_no_object_box": 1}


def test_valid_is_genies_dev_through_genie_convert(tmp_path):
    write_release(tmp_path / "MORE", split="valid")
    out = tmp_path / "dev.jsonl"
    run = subprocess.run([sys.executable, "-m", "genie.cli", "convert", "--task", "more", "--source",
                          str(tmp_path / "MORE"), "--split", "dev", "--out", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["left_out_no_image"] == 1
    assert [r.objects[0].name for r in read_records(out)] == ["cup", "cap"]


@pytest.mark.parametrize("line, message", [
    ("{'token': ['a'], 'h': {'pos': [0, 1]}, 't': {'name': 'cup'}, 'img_id': 'a.jpg', 'relation': 'x'}",
     "relation 'x' is not in the release's rel2id.json"),
    ("__import__('os').system('touch PWNED')", "not a Python dict literal"),
    ("{'token': ['a'], 'h': {'pos': [0, 1]}, 't': {}, 'img_id': 'a.jpg', 'relation': 'NA'}", "'t' must name the object"),
    ("{'token': ['a'], 'h': {'pos': [0, 1]}, 't': {'name': 'cup'}, 'img_id': '../a.jpg', 'relation': 'NA'}",
     "'img_id' must be an image file name"),
])
def test_a_bad_line_is_one_error_naming_file_and_line(tmp_path, line, message):
    write_release(tmp_path)
    (tmp_path / "txt" / "train.txt").write_text(repr(LINES[0]) + "\n" + line + "\n")
    with pytest.raises(GenieError, match=message) as caught:
        MORE.builder(tmp_path, "train")
    assert "train.txt:2" in str(caught.value) and not (tmp_path / "PWNED").exists()


class RunsCode:
    def __reduce__(self):
        return (eval, ("open('PWNED', 'w')",))


def test_an_object_file_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_release(tmp_path, boxes={"a.jpg": {"cup": RunsCode()}})
    with pytest.raises(GenieError, match="refused: not a file of tensors and plain values") as caught:
        MORE.builder(tmp_path, "train")
    assert "ent_train_dict.pth" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_box_with_no_area_names_its_object(tmp_path):
    write_release(tmp_path, boxes={"a.jpg": {"cup": [1.5, 0.5, 0.2, 0.2]}, "b.jpg": {"cap": [0.5, 0.5, 1, 1]}})
    with pytest.raises(GenieError, match="object 'cup' of image 'a.jpg': box .* has no area"):
        MORE.builder(tmp_path, "train")


def test_gold_target_parse_score_is_100_over_the_labels_of_the_data(tmp_path):
    records = MORE.builder(write_release(tmp_path), "train").records
    task = MORE.with_labels(MORE.labels_in(records))
    assert task.labels == ("/per/obj/holds",) and MORE.labels != task.labels  # the registered task is unchanged
    assert [task.linearize(r).text for r in records] == ["per obj holds", "none"]
    predicted = []
    for record in records:
        parsed = task.parse(task.linearize(record).text, record)
        assert parsed.malformed == 0
        predicted.append(type(record)(record.id, "more", record.tokens, record.image_id, parsed.entities,
                                      parsed.relations, objects=record.objects))
    scores = task.evaluate(records, predicted)
    assert scores["more"]["f1"] == 100.0 and scores["accuracy"] == 100.0
    assert task.parse("per obj wears", records[0]).malformed == 1  # not a label of this data


def test_the_source_marks_the_entity_and_names_the_object(tmp_path):
    record = MORE.builder(write_release(tmp_path), "train").records[1]
    assert MORE.source_text(record) == "a [h] Red Sox [/h] cap [o] cap"


def test_the_real_release_round_trips(shared_datasets):
    folder = shared_datasets / "MORE"
    if not folder.is_dir():
        pytest.skip("the MORE release is not among the shared datasets (its repository releases code, not data)")
    for split in ("train", "dev", "test"):
        records = MORE.builder(folder, split).records
        task = MORE.with_labels(MORE.labels_in(records))
        for record in records:
            parsed = task.parse(task.linearize(record).text, record)
            assert [r.type for r in parsed.relations] == [r.type for r in record.relations if r.type != NO_RELATION]
