"""Objects given as input: in records and raw posts, validated on read, and placed first among the
regions the model reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genie.errors import GenieError
from genie.inference.posts import Post, post_prediction
from genie.records import GivenObject, Record, Relation, read_records, write_records
from genie.regions.given import objects_first
from genie.regions.npz import RegionFeatures

RECORD = {"id": "1", "task": "more", "tokens": ["Obama", "waves"], "image_id": "img",
          "entities": [{"start": 0, "end": 1, "text": "Obama", "type": "UNTYPED"}],
          "objects": [{"name": "person", "box": [10, 20, 110, 220]}],
          "relations": [{"head": 0, "tail": 0, "type": "same", "tail_object": True}]}


def test_a_record_with_objects_reads_and_writes_back(tmp_path):
    record = Record.from_dict(RECORD)
    assert record.objects == [GivenObject("person", (10.0, 20.0, 110.0, 220.0))]
    assert record.relations == [Relation(0, 0, "same", tail_object=True)]
    write_records(tmp_path / "r.jsonl", [record])
    assert read_records(tmp_path / "r.jsonl") == [record]
    assert json.loads((tmp_path / "r.jsonl").read_text())["objects"] == RECORD["objects"]


@pytest.mark.parametrize("change, message", [
    ({"objects": {"name": "x"}}, "'objects' must be a list"),
    ({"objects": [{"name": "", "box": [0, 0, 1, 1]}]}, "object 0 name must be a non-empty string"),
    ({"objects": [{"name": "car", "box": [0, 0, 1]}]}, r"object 0 box must be \[x1, y1, x2, y2\]"),
    ({"objects": [{"name": "car", "box": [5, 0, 1, 1]}]}, "must have x1 < x2"),
    ({"objects": [{"name": "car", "box": [0, 0, 1, 1], "score": 1}]}, "exactly 'name' and 'box'"),
    ({"relations": [{"head": 0, "tail": 1, "type": "r", "tail_object": True}]}, "tail 1 its 1 objects"),
    ({"relations": [{"head": 0, "tail": 0, "type": "r", "tail_object": 1}]}, "tail_object must be true or false"),
])
def test_bad_objects_are_refused_naming_the_problem(change, message, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**RECORD, **change}) + "\n")
    with pytest.raises(GenieError, match=message) as caught:
        read_records(path)
    assert f"{path}:1" in str(caught.value)


def regions(boxes: list, k: int = 5) -> RegionFeatures:
    n = len(boxes)
    features = np.zeros((k, 3), np.float32)
    features[:n] = np.arange(1, n + 1)[:, None]  # region i's vector is i + 1 everywhere
    out = RegionFeatures(features, np.zeros((k, 4), np.float32), np.zeros(k, bool), (400, 300))
    out.boxes[:n] = np.asarray(boxes, np.float32).reshape(n, 4)
    out.mask[:n] = True
    return out


def test_a_given_object_takes_the_vector_of_the_region_it_overlaps_most_and_goes_first():
    image = regions([[0, 0, 50, 50], [100, 100, 200, 200], [300, 0, 390, 90]])
    placed = objects_first(image, [(105.0, 95.0, 205.0, 200.0)])
    assert placed.features[:, 0].tolist() == [2, 1, 3, 0, 0]  # region 1 first, then the others in order
    assert placed.boxes[0].tolist() == [105, 95, 205, 200]  # the object's own box
    assert placed.boxes[1:3].tolist() == [[0, 0, 50, 50], [300, 0, 390, 90]]
    assert placed.mask.tolist() == [True, True, True, False, False]
    assert placed.image_size == (400, 300) and placed.given == 1 and image.given == 0


def test_two_objects_never_share_a_region_and_k_is_kept():
    image = regions([[0, 0, 50, 50], [100, 100, 200, 200]], k=2)
    placed = objects_first(image, [(0.0, 0.0, 50.0, 50.0), (0.0, 0.0, 40.0, 40.0)])
    assert placed.features[:, 0].tolist() == [1, 2]  # the second object gets the region left
    assert placed.mask.all()


def test_with_no_real_region_a_given_object_is_its_box_alone():
    placed = objects_first(regions([]), [(1.0, 2.0, 3.0, 4.0)])
    assert placed.features[0].tolist() == [0, 0, 0] and placed.boxes[0].tolist() == [1, 2, 3, 4]
    assert placed.mask.tolist() == [True, False, False, False, False]


def test_a_raw_post_carries_its_objects_to_the_prediction():
    post = Post.parse({"text": "Obama waves", "objects": [{"name": "person", "box": [1, 2, 30, 40]}]}, "7")
    assert post.objects == [GivenObject("person", (1.0, 2.0, 30.0, 40.0))]
    record = Record("7", "mner", ["Obama", "waves"], "", objects=post.objects)
    assert post_prediction(post, record)["objects"] == [{"name": "person", "box": [1.0, 2.0, 30.0, 40.0]}]
    with pytest.raises(ValueError, match="object 0 box"):
        Post.parse({"text": "x", "objects": [{"name": "person", "box": "1 2 3 4"}]}, "1")


def test_the_report_shows_the_given_objects(tmp_path):
    from genie.analysis.report import write_report
    from genie.tasks import get_task

    record = Record("7", "mner", ["Obama", "waves"], "", objects=[GivenObject("person", (1.0, 2.0, 30.0, 40.5))])
    write_report(get_task("mner"), [record], [record], tmp_path / "report.html")
    assert "given objects: person [1, 2, 30, 40.5]" in (tmp_path / "report.html").read_text()


def test_only_a_model_for_given_objects_marks_their_regions(tmp_path):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from genie.model.modeling import GenieModel, RegionEncoder

    encoder = RegionEncoder(3, 8, dropout=0.0, given_regions=True)
    with torch.no_grad():
        encoder.given.copy_(torch.randn(8))  # not constant: the layer norm would take a constant away
    features, boxes = torch.randn(1, 3, 3), torch.rand(1, 3, 5)
    given = torch.tensor([[True, False, False]])
    marked, plain = encoder(features, boxes, given), encoder(features, boxes)
    assert not torch.allclose(marked[0, 0], plain[0, 0]) and torch.equal(marked[0, 1:], plain[0, 1:])
    assert RegionEncoder(3, 8, dropout=0.0).given is None  # no parameter at all without given objects

    def backbone():
        return T5ForConditionalGeneration(T5Config(vocab_size=100, d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                                   num_heads=2, decoder_start_token_id=0))
    GenieModel(backbone(), 3, given_regions=True).save_pretrained(tmp_path / "more")
    assert GenieModel.from_pretrained(tmp_path / "more").regions.given is not None
    GenieModel(backbone(), 3).save_pretrained(tmp_path / "mner")
    assert GenieModel.from_pretrained(tmp_path / "mner").regions.given is None
