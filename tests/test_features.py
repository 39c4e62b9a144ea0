"""Region features: fixed K with a mask, first-K order, loud errors, counted zeros."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genie.errors import GenieError
from genie.regions.npz import load_npz, zero_regions
from genie.regions.source import FeatureSource


def write_vinvl(path: Path, n: int, dim: int = 6, drop: str | None = None, **override) -> dict:
    rng = np.random.default_rng(n)
    arrays = {"box_features": rng.standard_normal((n, dim)).astype(np.float32),
              "bounding_boxes": rng.uniform(0, 300, (n, 4)).astype(np.float32),
              "image_h": np.array(480), "image_w": np.array(640), "num_boxes": np.array(n),
              "scores": rng.uniform(size=n), "objects": np.array(["person"] * n), "extra": np.zeros(2)}
    arrays.update(override)
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    return arrays


def test_pads_with_zeros_and_masks_the_padding(tmp_path):
    arrays = write_vinvl(tmp_path / "a.jpg.npz", n=3)
    regions = load_npz(tmp_path / "a.jpg.npz", max_regions=5)
    assert regions.features.shape == (5, 6) and regions.features.dtype == np.float32
    assert regions.boxes.shape == (5, 4) and regions.boxes.dtype == np.float32
    np.testing.assert_array_equal(regions.features[:3], arrays["box_features"])
    np.testing.assert_array_equal(regions.boxes[:3], arrays["bounding_boxes"])
    assert not regions.features[3:].any() and not regions.boxes[3:].any()
    assert regions.mask.tolist() == [True, True, True, False, False]
    assert regions.image_size == (640, 480)


def test_keeps_the_first_k_boxes_in_file_order(tmp_path):
    arrays = write_vinvl(tmp_path / "a.jpg.npz", n=7)
    regions = load_npz(tmp_path / "a.jpg.npz", max_regions=4)
    np.testing.assert_array_equal(regions.features, arrays["box_features"][:4])
    np.testing.assert_array_equal(regions.boxes, arrays["bounding_boxes"][:4])
    assert regions.mask.all()


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "a.jpg.npz"
    write_vinvl(path, n=5)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(GenieError, match="corrupt or truncated") as err:
        load_npz(path, max_regions=4)
    assert err.value.path == str(path)


@pytest.mark.parametrize("key", ["box_features", "bounding_boxes", "image_w"])
def test_missing_key_names_the_file_and_key(tmp_path, key):
    path = tmp_path / "a.jpg.npz"
    write_vinvl(path, n=5, drop=key)
    with pytest.raises(GenieError, match=key) as err:
        load_npz(path, max_regions=4)
    assert err.value.path == str(path)


@pytest.mark.parametrize("override, problem", [
    ({"bounding_boxes": np.zeros((4, 4))}, "bounding_boxes has shape"),
    ({"num_boxes": np.array(9)}, "num_boxes is 9"),
    ({"box_features": np.full((5, 6), np.nan)}, "NaN"),
])
def test_inconsistent_file_is_an_error(tmp_path, override, problem):
    write_vinvl(tmp_path / "a.jpg.npz", n=5, **override)
    with pytest.raises(GenieError, match=problem):
        load_npz(tmp_path / "a.jpg.npz", max_regions=8)


def test_wrong_feature_dim_is_an_error(tmp_path):
    write_vinvl(tmp_path / "img1.jpg.npz", n=3, dim=6)
    source = FeatureSource(tmp_path, max_regions=4, feature_dim=8)
    with pytest.raises(GenieError, match="dimension 6, expected 8"):
        source.get("img1")


def test_missing_file_is_an_error_by_default(tmp_path):
    source = FeatureSource(tmp_path, max_regions=4, feature_dim=6)
    with pytest.raises(GenieError, match="no region features for image img9 .*on_missing=zeros"):
        source.get("img9")


def test_missing_file_with_zeros_is_counted_and_reported(tmp_path):
    write_vinvl(tmp_path / "img1.jpg.npz", n=3)
    write_vinvl(tmp_path / "img2.npz", n=2)  # the plain `<id>.npz` name is accepted too
    source = FeatureSource(tmp_path, max_regions=4, feature_dim=6, on_missing="zeros")
    assert source.get("img1").mask.sum() == 3 and source.get("img2").mask.sum() == 2
    for _ in range(2):
        regions = source.get("img9")
        assert not regions.features.any() and not regions.mask.any()
        assert regions.features.shape == (4, 6)
    assert source.missing == {"img9"}
    assert source.report() == "region features: 1 of 3 images missing, used zeros"


def test_check_finds_missing_images_before_any_read(tmp_path):
    """What a run does first: reads in DataLoader workers never reach the main process's counts."""
    write_vinvl(tmp_path / "img1.jpg.npz", n=3)
    source = FeatureSource(tmp_path, max_regions=4, feature_dim=6, on_missing="zeros")
    source.check(["img1", "img9", "img1"])
    assert source.report() == "region features: 1 of 2 images missing, used zeros"
    strict = FeatureSource(tmp_path, max_regions=4, feature_dim=6)
    with pytest.raises(GenieError, match="img9.jpg.npz: no region features for image img9"):
        strict.check(["img1", "img9"])


def test_no_folder_is_a_text_only_run_and_says_so(tmp_path):
    with pytest.raises(GenieError, match="not found"):
        FeatureSource(tmp_path / "nowhere", max_regions=4, feature_dim=6, on_missing="zeros")
    source = FeatureSource(None, max_regions=4, feature_dim=6)  # on_missing=error: no folder is not "missing"
    source.check(["img1", "img2"])
    assert source.text_only and not source.get("img1").mask.any()
    assert source.report() == "region features: none (text-only: features.dir unset), zeros for all 2 images"
    assert not FeatureSource(tmp_path, max_regions=4, feature_dim=6).text_only


def test_a_report_of_no_image_never_says_all_0(tmp_path):
    assert FeatureSource(None, max_regions=4, feature_dim=6).report() == \
        "region features: none (text-only: features.dir unset)"
    assert FeatureSource(tmp_path, max_regions=4, feature_dim=6).report() == "region features: no image to read"


def test_cached_features_are_not_shared_with_callers(tmp_path):
    arrays = write_vinvl(tmp_path / "img1.jpg.npz", n=3)
    source = FeatureSource(tmp_path, max_regions=4, feature_dim=6)
    source.get("img1").features[:] = 0
    np.testing.assert_array_equal(source.get("img1").features[:3], arrays["box_features"])


def test_zero_regions_has_no_real_region():
    regions = zero_regions(5, 7)
    assert regions.features.shape == (5, 7) and regions.boxes.shape == (5, 4)
    assert not regions.mask.any()
