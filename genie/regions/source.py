"""Region features by image id (`features.dir`: a folder of `<IMGID>.jpg.npz`, or a store of
them packed by `genie features build`), each cut or padded to exactly K regions.

The published systems silently used zeros for a missing file; here a missing file is an error
or a counted, reported choice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from genie.errors import GenieError
from genie.options import OnMissing, check
from genie.regions.npz import RegionFeatures, load_npz, zero_regions
from genie.regions.store import FeatureStore, is_store

logger = logging.getLogger(__name__)
# Bounds the per-source cache: ~1700 images of 36 x 2048 float32, every image of a small corpus.
CACHE_BYTES = 512 * 2**20


class FeatureSource:
    """Region features by image id from a folder of `.npz` files or a region-feature store
    (`genie.regions.store`); missing images follow `on_missing`."""

    def __init__(self, directory: str | Path | None, max_regions: int, feature_dim: int,
                 on_missing: str = "error"):
        check(OnMissing, on_missing, "features.on_missing")
        if max_regions < 1 or feature_dim < 1:
            raise GenieError(f"features.max_regions ({max_regions}) and features.feature_dim "
                             f"({feature_dim}) must be positive")
        if directory is not None and not Path(directory).is_dir():
            raise GenieError("region-feature folder not found", directory)
        self.directory = Path(directory) if directory is not None else None
        self.store = _open_store(self.directory, feature_dim)
        if self.store is not None and max_regions > self.store.max_regions:
            logger.warning("%s keeps at most %d regions per image; features.max_regions=%d pads the rest",
                           self.directory, self.store.max_regions, max_regions)
        self.max_regions, self.feature_dim, self.on_missing = max_regions, feature_dim, on_missing
        self.missing: set[str] = set()
        self.seen: set[str] = set()
        # A plain dict (not functools.lru_cache) so the source pickles into DataLoader workers.
        self._cache: dict[str, RegionFeatures] = {}
        self._cache_size = max(1, CACHE_BYTES // (max_regions * feature_dim * 4))

    def get(self, image_id: str) -> RegionFeatures:
        """A fresh copy, so a caller that edits its arrays in place cannot corrupt the cache.
        An empty id is a post with no image (`genie predict`): no regions, and nothing missing."""
        if not image_id:
            return zero_regions(self.max_regions, self.feature_dim)
        self.seen.add(image_id)
        if self.store is not None:  # a store read is already a fresh copy, and fast: no cache
            return self._read(image_id)
        regions = self._cache.pop(image_id, None)
        if regions is None:
            regions = self._read(image_id)
        self._cache[image_id] = regions  # re-inserted last: dict order is the LRU order
        if len(self._cache) > self._cache_size:
            del self._cache[next(iter(self._cache))]
        return replace(regions, features=regions.features.copy(), boxes=regions.boxes.copy(),
                       mask=regions.mask.copy())

    def check(self, image_ids: Iterable[str]) -> None:
        """Look every image up before the run: a missing one fails (or is counted) at once rather
        than mid-epoch, and the counts hold even when DataLoader workers do the reads."""
        for image_id in filter(None, image_ids):
            self.seen.add(image_id)
            if self._find(image_id) is None:
                self._missing(image_id)

    def has(self, image_id: str) -> bool:
        """Whether the image has regions here, without counting it as seen or missing."""
        return self._find(image_id) is not None

    def _find(self, image_id: str) -> Path | None:
        """Where the image's regions are: the store, or its `.npz` file; None when nowhere."""
        if self.store is not None:
            return self.directory if image_id in self.store else None
        if self.directory is not None:
            for name in (f"{image_id}.jpg.npz", f"{image_id}.npz"):
                if (self.directory / name).is_file():
                    return self.directory / name
        return None

    def _read(self, image_id: str) -> RegionFeatures:
        where = self._find(image_id)
        if where is None:
            return self._missing(image_id)
        if self.store is not None:
            return self.store.read(image_id, self.max_regions)
        return load_npz(where, self.max_regions, self.feature_dim)

    def _missing(self, image_id: str) -> RegionFeatures:
        if self.directory is not None and self.on_missing == "error":
            where = self.directory if self.store is not None else self.directory / f"{image_id}.jpg.npz"
            expected = "not in the store" if self.store is not None else f"expected {where}"
            raise GenieError(f"no region features for image {image_id} ({expected}); "
                             f"pass features.on_missing=zeros to train without them", where)
        self.missing.add(image_id)
        return zero_regions(self.max_regions, self.feature_dim)

    def merge(self, seen: set[str], missing: set[str]) -> None:
        """Add another process's reads, so the report covers the images of every shard."""
        self.seen |= seen
        self.missing |= missing

    @property
    def text_only(self) -> bool:
        """No feature folder: every image gets zero regions (a documented mode: docs/training.md, Text-only runs)."""
        return self.directory is None

    def report(self) -> str:
        """One line for the run log, so zero features are never silent."""
        if self.text_only:
            zeros = f", zeros for all {len(self.seen)} images" if self.seen else ""
            return f"region features: none (text-only: features.dir unset){zeros}"
        if not self.seen:
            return "region features: no image to read"
        if not self.missing:
            return f"region features: all {len(self.seen)} images found"
        return f"region features: {len(self.missing)} of {len(self.seen)} images missing, used zeros"


def _open_store(directory: Path | None, feature_dim: int):
    """The verified store when `directory` is one (None for a folder of `.npz` files)."""
    if not is_store(directory):
        return None
    store = FeatureStore(directory)
    if store.dim != feature_dim:
        raise GenieError(f"the store's region features have dimension {store.dim}, expected {feature_dim} "
                         f"(features.dim)", directory)
    return store
