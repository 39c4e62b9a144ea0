"""`genie features extract`: a folder of images (some broken) -> VinVL-layout region files that
genie reads, resumable, never mixing two detectors, optionally packed into a store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_output import run_cli
from PIL import Image

from genie.feature_store import FeatureStore
from genie.features import load_npz
from genie.random_detectors import save_random_detector
from genie.records import Record, write_records
from genie.region_extraction import read_manifest

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
