"""`genie features extract`: a folder of images (some broken) -> VinVL-layout region files that
genie reads, resumable, never mixing two detectors, optionally packed into a store."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from cli_output import run_cli
from PIL import Image

from genie.config import load_config
from genie.demo import build_demo
from genie.records import Record, read_records, write_records
from genie.regions.manifest import read_manifest
from genie.regions.npz import load_npz
from genie.regions.random_detectors import FAMILIES, save_random_detector
from genie.regions.store import FeatureStore
from genie.tasks import TASKS
from genie.training.run import train

K = 5


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    root = tmp_path_factory.mktemp("detectors")
    return {family: save_random_detector(family, root / family, dim=32) for family in ("detr", "yolos")}


def write_images(folder, seed=0):
    """Four good images (JPEG, transparent PNG, grayscale, a rotated phone photo) and two broken ones."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), np.uint8)).save(folder / "photo.jpg")
    Image.fromarray(rng.integers(0, 255, (90, 90, 4), np.uint8)).save(folder / "sticker.png")
    Image.fromarray(rng.integers(0, 255, (100, 70), np.uint8)).save(folder / "scan.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rng.integers(0, 255, (60, 140, 3), np.uint8)).save(folder / "phone.jpg", exif=exif)
    (folder / "cut.jpg").write_bytes((folder / "photo.jpg").read_bytes()[:500])
    (folder / "junk.jpg").write_bytes(b"not an image at all")
    return folder


def extract(capsys, *args) -> tuple[int, dict | str]:
    return run_cli(capsys, "features", "extract", "--max-regions", K, *args)


def test_regions_are_written_in_the_vinvl_layout_and_bad_images_listed(detectors, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = write_images(tmp_path / "images")
    out = tmp_path / "regions"
    code, summary = extract(capsys, "--images", images, "--model", detectors["detr"], "--out", out)
    assert code == 0, summary
    assert (summary["images"], summary["written"], summary["skipped"], summary["bad"]) == (6, 4, 0, 2)
    assert summary["dim"] == 32 and summary["images_per_second"] > 0
    bad = [json.loads(line) for line in (out / "bad_images.jsonl").read_text().splitlines()]
    assert {row["image"]: row["reason"].split(" (")[0] for row in bad} == {
        "cut.jpg": "truncated or corrupt image", "junk.jpg": "not a readable image"}
    sizes = {"photo": (160, 120), "sticker": (90, 90), "scan": (70, 100), "phone": (60, 140)}  # phone: rotated
    for key, (width, height) in sizes.items():
        regions = load_npz(out / f"{key}.jpg.npz", K, 32)
        assert regions.image_size == (width, height), key
        real = regions.boxes[regions.mask]
        assert 1 <= len(real) <= K and (real[:, 2] > real[:, 0]).all() and (real[:, 3] > real[:, 1]).all()
        assert (real >= 0).all() and (real[:, [0, 2]] <= width).all() and (real[:, [1, 3]] <= height).all()
        with np.load(out / f"{key}.jpg.npz") as raw:
            assert (np.diff(raw["scores"]) <= 0).all() and int(raw["num_boxes"]) == len(raw["scores"])
    manifest = read_manifest(out)
    assert manifest["dim"] == 32 and manifest["detector"]["model"] == str(detectors["detr"])


def test_a_rerun_resumes_and_another_detector_is_refused(detectors, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = write_images(tmp_path / "images")
    out = tmp_path / "regions"
    assert extract(capsys, "--images", images, "--model", detectors["detr"], "--out", out)[0] == 0
    before = (out / "photo.jpg.npz").read_bytes()
    (out / "scan.jpg.npz").unlink()
    code, summary = extract(capsys, "--images", images, "--model", detectors["detr"], "--out", out)
    assert (code, summary["written"], summary["skipped"]) == (0, 1, 3)
    assert (out / "photo.jpg.npz").read_bytes() == before and (out / "scan.jpg.npz").is_file()
    code, err = extract(capsys, "--images", images, "--model", detectors["yolos"], "--out", out)
    assert code == 2 and "never mixed in one folder" in err, err
    code, err = extract(capsys, "--images", images, "--model", detectors["detr"], "--out", out, "--nms-iou", "0.5")
    assert code == 2 and "never mixed" in err  # other settings of the same detector are another extractor


def test_on_bad_image_error_stops_with_one_line_and_keeps_what_was_written(detectors, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = write_images(tmp_path / "images")
    out = tmp_path / "regions"
    code, err = extract(capsys, "--images", images, "--model", detectors["detr"], "--out", out,
                        "--on-bad-image", "error", "--batch-size", "1")
    assert code == 2 and err.startswith(f"genie: error: {images / 'cut.jpg'}: bad image: truncated"), err
    assert (out / "extraction.json").is_file() and not list(out.glob("*.tmp"))


def test_records_pick_the_images_and_a_store_packs_them(detectors, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = write_images(tmp_path / "images")
    records = tmp_path / "test.jsonl"
    write_records(records, [Record(f"r{k}", "gmner", ["a"], image) for k, image in
                            enumerate(["photo", "phone", "photo", "gone"])])
    store = tmp_path / "store"
    code, summary = extract(capsys, "--images", images, "--records", records, "--model", detectors["detr"],
                            "--out", store, "--store")
    assert code == 0, summary
    assert (summary["images"], summary["written"], summary["bad"]) == (3, 2, 1)  # photo, phone; gone is missing
    packed = FeatureStore(store)
    assert sorted(packed.ids) == ["phone", "photo"] and packed.dim == 32
    assert read_manifest(store)["detector"]["model"] == str(detectors["detr"])  # the origin travels with the store
    assert packed.read("photo", K).image_size == (160, 120)


@pytest.mark.parametrize("family", FAMILIES)
def test_odd_sizes_are_counted_bad_and_the_rest_extracted(family, tmp_path, capsys, monkeypatch):
    """A 1x1 pixel and banners of 3 px are too small for any detector; a 40 px banner depends on it:
    YOLOS's processor resizes it to 0 px, Grounding DINO's map holds fewer cells than its queries.
    Each odd one is listed, the good ones are written, and the run ends well."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = save_random_detector(family, tmp_path / family, dim=32)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"good": (160, 120), "pixel": (1, 1), "wide": (4000, 3), "tall": (3, 4000), "banner": (4000, 40),
             "also_good": (90, 130)}
    for name, (width, height) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (height, width, 3), np.uint8)).save(images / f"{name}.png")
    prompt = ["--prompt", "cat. dog."] if family == "grounding_dino" else []
    capsys.readouterr()  # what building the detector printed
    code, summary = extract(capsys, "--images", images, "--model", model, "--out", tmp_path / "regions",
                            "--batch-size", 6, *prompt)
    assert code == 0, summary
    reasons = {row["image"]: row["reason"] for row in map(json.loads, open(tmp_path / "regions" / "bad_images.jsonl"))}
    assert {reasons.pop(f"{name}.png").split(":")[0] for name in ("pixel", "wide", "tall")} == {"too small"}
    expected = {"yolos": "the detector's image processor cannot resize 4000x40 pixels",
                "grounding_dino": "the detector fails on 4000x40 pixels (RuntimeError"}
    assert list(reasons) == (["banner.png"] if family in expected else [])
    assert all(reason.startswith(expected[family]) for reason in reasons.values())
    written = sorted(p.name for p in (tmp_path / "regions").glob("*.npz"))
    assert written == sorted(f"{name}.jpg.npz" for name in ("good", "also_good", *([] if reasons else ["banner"])))
    assert (summary["written"], summary["bad"]) == (len(written), 6 - len(written))


def test_user_mistakes_are_one_line(detectors, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--images", tmp_path / "nowhere", "--model", detectors["detr"]], "image folder not found"),
        (["--images", empty, "--model", detectors["detr"]], "no images in the folder"),
        (["--images", write_images(tmp_path / "images"), "--model", tmp_path / "no-model"], "no-model"),
    ]
    for args, problem in cases:
        code, err = extract(capsys, *args, "--out", tmp_path / "out")
        assert code == 2 and problem in err, err


@pytest.mark.slow
def test_extracted_regions_train_and_predict_with_the_same_detector(detectors, tmp_path, capsys, caplog, monkeypatch):
    """A run on extracted regions records their detector; `genie predict` then extracts new
    images with it, unasked and without a warning."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "gmner"
    build_demo(data, TASKS["gmner"].demo, n_train=24, n_dev=8, n_test=8)
    records = [r for split in ("train", "dev", "test") for r in read_records(data / f"{split}.jsonl")]
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    for r in records:
        Image.fromarray(rng.integers(0, 255, (100, 140, 3), np.uint8)).save(images / f"{r.image_id}.jpg")
    assert extract(capsys, "--images", images, "--model", detectors["detr"], "--out", tmp_path / "regions")[0] == 0
    metrics = train(load_config(None, [
        "task=gmner", f"data.dir={data}", f"features.dir={tmp_path / 'regions'}", "features.dim=32",
        f"features.max_regions={K}", "train.epochs=1", "train.batch_size=8", f"train.output_dir={tmp_path / 'run'}"]))
    assert metrics["features"] == f"region features: all {len(records)} images found"  # every split's, read back
    origin = json.loads((tmp_path / "run" / "best" / "regions.json").read_text())["gmner"]
    assert origin == read_manifest(tmp_path / "regions")
    capsys.readouterr()  # the run's own log
    posts = tmp_path / "posts.jsonl"
    posts.write_text(f'{{"text": "Obama in Paris", "image": "{records[0].image_id}"}}\n{{"bad": 1}}\nplain text\n')
    with caplog.at_level(logging.WARNING):
        code, summary = run_cli(capsys, "predict", "--checkpoint", tmp_path / "run", "--input", posts,
                                "--output", tmp_path / "preds.jsonl", "--images", images, "--on-bad-line", "skip")
    assert code == 0, summary
    assert not [r for r in caplog.records if "trained on" in r.getMessage()]
    assert (summary["posts"], summary["skipped_lines"], summary["without_image"]) == (2, 1, 1)
    assert read_manifest(tmp_path / "preds.jsonl.regions") == origin  # the training's detector and settings
    assert summary["features"] == "region features: all 1 images found"
