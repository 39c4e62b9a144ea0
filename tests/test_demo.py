"""The demo corpus: deterministic, in the real formats, and groundable only through the regions."""

from __future__ import annotations

import json
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context

import numpy as np
import pytest

from genie.demo import build_demo
from genie.records import read_records
from genie.regions.source import FeatureSource
from genie.tasks import get_task

GMNER = get_task("gmner").demo
SMALL = {"n_train": 300, "n_dev": 40, "n_test": 40}
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, build_demo(out, GMNER, **SMALL)


def npz_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def iou(box, boxes):
    x1, y1 = np.maximum(boxes[:, 0], box[0]), np.maximum(boxes[:, 1], box[1])
    x2, y2 = np.minimum(boxes[:, 2], box[2]), np.minimum(boxes[:, 3], box[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (areas + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def test_same_seed_same_files_other_seed_different(demo, tmp_path):
    out, _ = demo
    again, other = tmp_path / "again", tmp_path / "other"
    build_demo(again, GMNER, **SMALL)
    build_demo(other, GMNER, seed=1, **SMALL)
    for split in SPLITS:
        assert (again / f"{split}.jsonl").read_bytes() == (out / f"{split}.jsonl").read_bytes()
    names = sorted(p.name for p in (out / "features").glob("*.npz"))
    assert names == sorted(p.name for p in (again / "features").glob("*.npz"))
    for name in names:
        assert (again / "features" / name).read_bytes() == (out / "features" / name).read_bytes()
        a, b = npz_arrays(out / "features" / name), npz_arrays(again / "features" / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert (other / "train.jsonl").read_bytes() != (out / "train.jsonl").read_bytes()
    first = names[0]
    assert not np.array_equal(npz_arrays(out / "features" / first)["box_features"],
                              npz_arrays(other / "features" / first)["box_features"])


def test_records_read_back_and_match_the_counts(demo):
    out, counts = demo
    image_ids = set()
    for split in SPLITS:
        records = read_records(out / f"{split}.jsonl")
        entities = [e for r in records for e in r.entities]
        assert counts[split] == {"tweets": len(records), "entities": len(entities),
                                 "groundable": sum(e.groundable for e in entities),
                                 "boxes": sum(len(e.boxes) for e in entities), "relations": 0}
        for r in records:
            assert r.task == "gmner" and r.id.startswith(f"demo-{split}-")
            assert 6 <= len(r.tokens) <= 20 and 1 <= len(r.entities) <= 3
            assert (out / "features" / f"{r.image_id}.jpg.npz").is_file()
            for e in r.entities:
                assert e.text == " ".join(r.tokens[e.start:e.end])
                assert e.type in {"PER", "LOC", "ORG", "OTHER"}
                assert all(e.boxes == other.boxes for other in r.entities if other.text == e.text)
            image_ids.add(r.image_id)
    assert len(image_ids) == sum(c["tweets"] for c in counts.values())
    assert json.loads((out / "demo.json").read_text())["counts"] == counts


def test_gold_boxes_sit_on_a_region_that_identifies_the_name(demo):
    out, counts = demo
    source = FeatureSource(out / "features", max_regions=10, feature_dim=64)
    matched = defaultdict(list)  # entity name -> features of the regions under its gold boxes
    for split in SPLITS:
        for r in read_records(out / f"{split}.jsonl"):
            regions = source.get(r.image_id)
            boxes, feats = regions.boxes[regions.mask], regions.features[regions.mask]
            assert 4 <= len(boxes) <= 10
            for e in r.entities:
                for box in e.boxes:
                    overlap = iou(np.array(box, float), boxes)
                    assert overlap.max() > 0.8
                    matched[e.text].append(feats[overlap.argmax()])
    groundable = sum(c["groundable"] for c in counts.values()) / sum(c["entities"] for c in counts.values())
    assert 0.4 < groundable < 0.6
    # The matched regions of one name cluster: nearest name centroid recovers the name.
    names = sorted(matched)
    centroids = np.stack([np.mean(matched[n], axis=0) for n in names])
    hits = [names[int(np.argmax(centroids @ f))] == n for n in names for f in matched[n]]
    assert np.mean(hits) > 0.95


def test_noise_share_one_makes_nothing_groundable(tmp_path):
    counts = build_demo(tmp_path, GMNER, n_train=50, n_dev=5, n_test=5, noise_share=1.0)
    assert all(c["groundable"] == 0 and c["boxes"] == 0 and c["entities"] > 0 for c in counts.values())


def test_second_call_is_a_no_op_and_a_changed_parameter_rebuilds(tmp_path):
    counts = build_demo(tmp_path, GMNER, **SMALL)
    watched = [tmp_path / "train.jsonl", tmp_path / "demo.json",
               tmp_path / "features" / "demo_000000.jpg.npz"]
    before = [p.stat().st_mtime_ns for p in watched]
    assert build_demo(tmp_path, GMNER, **SMALL) == counts
    assert [p.stat().st_mtime_ns for p in watched] == before
    changed = build_demo(tmp_path, GMNER, **{**SMALL, "n_test": 10})
    assert changed["test"]["tweets"] == 10 and len(read_records(tmp_path / "test.jsonl")) == 10
    assert json.loads((tmp_path / "demo.json").read_text())["params"]["n_test"] == 10
    assert (tmp_path / "train.jsonl").stat().st_mtime_ns != before[0]
    assert len(list((tmp_path / "features").glob("*.npz"))) == 350  # no stale images left behind


def test_a_changed_spec_rebuilds(tmp_path):
    counts = build_demo(tmp_path, GMNER, **SMALL)
    before = (tmp_path / "train.jsonl").read_bytes()
    fewer_names = replace(GMNER, names_per_key=3)
    build_demo(tmp_path, fewer_names, **SMALL)
    names = {e.text for r in read_records(tmp_path / "train.jsonl") for e in r.entities}
    assert len(names) <= 4 * 3 and (tmp_path / "train.jsonl").read_bytes() != before
    assert build_demo(tmp_path, GMNER, **SMALL) == counts and (tmp_path / "train.jsonl").read_bytes() == before


def test_two_runs_building_one_demo_at_once_share_a_whole_one(tmp_path):
    """Concurrent builders of one folder (two runs started together): one builds, the other waits
    and reuses it; neither may delete the other's half-written images."""
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        counts = list(pool.map(_build_small, [tmp_path] * 2))
    assert counts[0] == counts[1]
    images = {p.name for p in (tmp_path / "features").glob("*.npz")}
    assert len(images) == sum(c["tweets"] for c in counts[0].values())
    assert not (tmp_path / ".features.tmp").exists()


def _build_small(folder):
    return build_demo(folder, GMNER, n_train=400, n_dev=50, n_test=50)
