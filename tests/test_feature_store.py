"""The region-feature store: reads what the npz folder reads, fails loudly when damaged, builds
atomically, and pickles into DataLoader workers without its memmaps."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from test_cli import assert_one_line_error, genie
from test_features import write_vinvl

from genie.errors import GenieError
from genie.regions.source import FeatureSource
from genie.regions.store import FeatureStore, build_store, is_store, verify_store

DIM, K = 8, 5
BOXES = {"img0": 0, "img2": 2, "img4": 4, "img5": 5, "img7": 7, "img9": 9}  # around K, on both sides


@pytest.fixture
def npz_dir(tmp_path):
    """VinVL files with 0 to 9 boxes and their own image sizes; one has the plain `<id>.npz` name."""
    folder = tmp_path / "npz"
    folder.mkdir()
    for image_id, n in BOXES.items():
        name = f"{image_id}.npz" if image_id == "img4" else f"{image_id}.jpg.npz"
        write_vinvl(folder / name, n, dim=DIM, image_w=np.array(100 + n), image_h=np.array(50 + n))
    return folder


@pytest.fixture
def store(npz_dir, tmp_path):
    path = tmp_path / "store"
    build_store(npz_dir, path, max_regions=K, dtype="float32")
    return path


def leftovers(folder):
    """Anything a build left beside its output: temporary or moved-aside folders."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("max_regions", [3, K, 8])
def test_store_reads_what_the_npz_folder_reads(npz_dir, tmp_path, caplog, dtype, max_regions):
    stats = build_store(npz_dir, tmp_path / "store", max_regions=K, dtype=dtype)
    assert (stats["images"], stats["max_regions"], stats["dim"], stats["dtype"]) == (len(BOXES), K, DIM, dtype)
    from_npz = FeatureSource(npz_dir, max_regions, DIM)
    from_store = FeatureSource(tmp_path / "store", max_regions, DIM)
    assert from_store.store is not None and from_store.store.ids == sorted(BOXES)
    assert (f"keeps at most {K} regions" in caplog.text) == (max_regions > K)
    tolerance = {"rtol": 1e-3, "atol": 1e-6} if dtype == "float16" else {"rtol": 0, "atol": 0}
    for image_id, n in BOXES.items():
        want, got = from_npz.get(image_id), from_store.get(image_id)
        want.mask[K:], want.features[K:], want.boxes[K:] = False, 0, 0  # a store keeps the first K only
        assert got.mask.tolist() == want.mask.tolist() and got.mask.sum() == min(n, K, max_regions)
        assert got.features.dtype == np.dtype(dtype) and got.features.shape == (max_regions, DIM)
        np.testing.assert_allclose(got.features, want.features, **tolerance)
        np.testing.assert_array_equal(got.boxes, want.boxes)
        assert got.image_size == want.image_size == (100 + n, 50 + n)
    assert from_store.report() == f"region features: all {len(BOXES)} images found"


def test_cli_builds_and_verifies_a_store(npz_dir, tmp_path):
    out = tmp_path / "store"
    built = genie("features", "build", "--src", str(npz_dir), "--out", str(out), "--max-regions", "4",
                  "--dtype", "float32")
    assert built.returncode == 0, built.stderr
    stats = json.loads(built.stdout)
    assert (stats["images"], stats["max_regions"], stats["dim"], stats["dtype"]) == (len(BOXES), 4, DIM, "float32")
    assert is_store(out) and stats["bytes"] == sum(f.stat().st_size for f in out.iterdir())
    verified = genie("features", "verify", str(out))
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["images"] == len(BOXES)


@pytest.mark.parametrize("name, change", [("features.npy", -7), ("num_regions.npy", +4)])
def test_resized_array_file_is_a_one_line_error_naming_it(store, name, change):
    file = store / name
    os.truncate(file, file.stat().st_size + change)  # growing pads with zeros
    assert_one_line_error(genie("features", "verify", str(store)), str(file), "truncated or corrupt")
    with pytest.raises(GenieError, match="truncated or corrupt") as err:
        FeatureSource(store, K, DIM)
    assert err.value.path == str(file)


def test_flipped_byte_is_a_checksum_error(store):
    boxes = store / "boxes.npy"
    data = bytearray(boxes.read_bytes())
    data[-1] ^= 0xFF
    boxes.write_bytes(bytes(data))
    for check in (verify_store, lambda path: FeatureSource(path, K, DIM)):
        with pytest.raises(GenieError, match="checksum mismatch.*corrupt store") as err:
            check(store)
        assert err.value.path == str(boxes)
    FeatureStore(store, verify=False)  # sizes and shapes are still right: only the checksum tells


@pytest.mark.parametrize("edit, problem", [
    (lambda text: text[:-5], "invalid store.json"),
    (lambda text: text.replace("genie-region-store", "other-store"), "not a genie-region-store"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "dim"}), "lacks key dim"),
    (lambda text: text.replace('"count": 6', '"count": 7'), "inconsistent store.json"),
])
def test_broken_manifest_names_it(store, edit, problem):
    manifest = store / "store.json"
    manifest.write_text(edit(manifest.read_text()))
    with pytest.raises(GenieError, match=problem) as err:
        FeatureStore(store)
    assert err.value.path == str(manifest)


def test_image_missing_from_the_store(store):
    with pytest.raises(GenieError, match="no region features for image img3 .*not in the store") as err:
        FeatureSource(store, K, DIM).get("img3")
    assert err.value.path == str(store)
    source = FeatureSource(store, K, DIM, on_missing="zeros")
    assert source.get("img2").mask.sum() == 2
    assert not source.get("img3").mask.any()
    assert source.missing == {"img3"}
    assert source.report() == "region features: 1 of 2 images missing, used zeros"


def test_failed_build_leaves_no_store_and_keeps_the_old_one(npz_dir, store, tmp_path):
    bad = npz_dir / "img5.jpg.npz"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(GenieError, match="corrupt or truncated") as err:
        build_store(npz_dir, tmp_path / "new", max_regions=K)
    assert err.value.path == str(bad)
    assert not (tmp_path / "new").exists() and leftovers(tmp_path) == []

    manifest = (store / "store.json").read_bytes()
    with pytest.raises(GenieError, match="corrupt or truncated"):
        build_store(npz_dir, store, max_regions=3)
    assert (store / "store.json").read_bytes() == manifest and leftovers(tmp_path) == []
    assert verify_store(store)["max_regions"] == K


def test_rebuild_replaces_a_store_but_never_another_folder(npz_dir, store, tmp_path):
    assert build_store(npz_dir, store, max_regions=3)["max_regions"] == 3
    assert FeatureStore(store).max_regions == 3 and leftovers(tmp_path) == []
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(GenieError, match="not a region-feature store") as err:
        build_store(npz_dir, other)
    assert err.value.path == str(other) and (other / "keep.txt").read_text() == "mine"


def test_pickles_without_its_arrays(tmp_path):
    folder = tmp_path / "npz"
    folder.mkdir()
    write_vinvl(folder / "big.jpg.npz", 200, dim=64)
    write_vinvl(folder / "small.jpg.npz", 3, dim=64)
    build_store(folder, tmp_path / "store", max_regions=200, dtype="float32")
    assert (tmp_path / "store" / "features.npy").stat().st_size > 100_000
    source = FeatureSource(tmp_path / "store", 200, 64)
    want = source.get("big")  # the memmaps are open
    for obj in (source.store, source):
        data = pickle.dumps(obj)
        assert len(data) < 10_000
    copy = pickle.loads(data)
    got = copy.get("big")
    np.testing.assert_array_equal(got.features, want.features)
    np.testing.assert_array_equal(got.boxes, want.boxes)
    assert got.mask.sum() == 200 and got.image_size == want.image_size


def test_store_dimension_must_match_features_dim(store):
    with pytest.raises(GenieError, match="dimension 8, expected 6") as err:
        FeatureSource(store, K, 6)
    assert err.value.path == str(store)


def test_bad_build_inputs_are_errors(npz_dir, tmp_path):
    with pytest.raises(GenieError, match="dtype must be one of float16, float32"):
        build_store(npz_dir, tmp_path / "store", dtype="int8")
    (tmp_path / "empty").mkdir()
    for src in (tmp_path / "empty", tmp_path / "nowhere"):
        with pytest.raises(GenieError) as err:
            build_store(src, tmp_path / "store")
        assert err.value.path == str(src)
    write_vinvl(npz_dir / "img8.jpg.npz", 8, dim=DIM + 1)  # a later file with another dimension
    with pytest.raises(GenieError, match=f"dimension {DIM + 1}, expected {DIM}") as err:
        build_store(npz_dir, tmp_path / "store")
    assert err.value.path == str(npz_dir / "img8.jpg.npz")
    os.remove(npz_dir / "img8.jpg.npz")
    write_vinvl(npz_dir / "img1.jpg.npz", 1, dim=DIM, box_features=np.full((1, DIM), 1e6, np.float32))
    with pytest.raises(GenieError, match="exceed the float16 range"):
        build_store(npz_dir, tmp_path / "store", dtype="float16")
    assert not (tmp_path / "store").exists() and leftovers(tmp_path) == []
