"""One image's regions in the VinVL layout (`<IMGID>.jpg.npz`), cut or padded to exactly K.

The published systems padded without a mask; here padding is masked. The lowest module of
`genie.regions`: the store packs these, the source serves them by image id.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genie.errors import GenieError

REQUIRED_KEYS = ("box_features", "bounding_boxes", "image_h", "image_w")


@dataclass
class RegionFeatures:
    """K regions of one image: real ones first (mask True), then zero padding (mask False)."""

    features: np.ndarray  # (K, D) float32 (float16 from a float16 store; the model casts)
    boxes: np.ndarray  # (K, 4) float32, xyxy pixels of the original image (gold boxes' space)
    mask: np.ndarray  # (K,) bool
    image_size: tuple[int, int]  # (w, h)
    given: int = 0  # the first `given` regions are objects given as input (genie/regions/given.py)


def zero_regions(max_regions: int, feature_dim: int) -> RegionFeatures:
    """No visual input: all padding, so nothing can be attended to or grounded."""
    return RegionFeatures(np.zeros((max_regions, feature_dim), np.float32),
                          np.zeros((max_regions, 4), np.float32),
                          np.zeros(max_regions, bool), (0, 0))


def load_npz(path: str | Path, max_regions: int, feature_dim: int | None = None) -> RegionFeatures:
    """Read one VinVL file and keep its first `max_regions` boxes in file order, as published."""
    path = Path(path)
    if not path.is_file():
        raise GenieError("no such region-feature file", path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise GenieError("not an .npz archive of region features", path)
        with data:
            missing = [key for key in REQUIRED_KEYS if key not in data.files]
            if missing:
                raise GenieError(f"region-feature file lacks key {', '.join(missing)}", path)
            feats, boxes = data["box_features"], data["bounding_boxes"]
            width, height = _scalar(data, "image_w", path), _scalar(data, "image_h", path)
            num_boxes = _scalar(data, "num_boxes", path) if "num_boxes" in data.files else None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise GenieError(f"corrupt or truncated region-feature file ({exc})", path) from None
    if feats.ndim != 2 or not np.issubdtype(feats.dtype, np.number):
        raise GenieError(f"box_features is {feats.dtype} {feats.shape}, expected numbers (boxes, dim)", path)
    n, dim = feats.shape
    if boxes.shape != (n, 4) or not np.issubdtype(boxes.dtype, np.number):
        raise GenieError(f"bounding_boxes has shape {boxes.shape}, expected ({n}, 4) "
                         f"to match box_features", path)
    if num_boxes is not None and num_boxes != n:
        raise GenieError(f"num_boxes is {num_boxes} but box_features has {n} rows", path)
    if feature_dim is not None and dim != feature_dim:
        raise GenieError(f"box_features have dimension {dim}, expected {feature_dim}", path)
    k = min(n, max_regions)
    out = RegionFeatures(np.zeros((max_regions, dim), np.float32), np.zeros((max_regions, 4), np.float32),
                         np.zeros(max_regions, bool), (width, height))
    out.features[:k], out.boxes[:k], out.mask[:k] = feats[:k], boxes[:k], True
    if not (np.isfinite(out.features).all() and np.isfinite(out.boxes).all()):
        raise GenieError("region features or boxes contain NaN or infinity", path)
    return out


def _scalar(data: np.lib.npyio.NpzFile, key: str, path: Path) -> int:
    value = data[key]
    if value.size != 1:
        raise GenieError(f"{key} has shape {value.shape}, expected a single number", path)
    return int(value.reshape(-1)[0])
