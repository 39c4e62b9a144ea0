"""A region-feature store: every image's first K regions packed into a few memory-mapped `.npy`
arrays, so a training read is a slice of a mapped file instead of unzipping one `.npz` per image.

Layout of a store folder: `features.npy` (N, K, D) float16 or float32, `boxes.npy` (N, K, 4)
float32 pixels, `num_regions.npy` (N,) int32 (real regions; the rest of the K rows are zero
padding), `image_sizes.npy` (N, 2) int32 (w, h), and `store.json`: format, version, sizes, the
sorted image ids (row order) and each array file's shape, dtype and crc32.
"""

from __future__ import annotations

import json
import shutil
import time
import tokenize
import zlib
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm

from genie.errors import GenieError
from genie.io import atomic_folder, atomic_write
from genie.regions.manifest import MANIFEST as EXTRACTION
from genie.regions.npz import RegionFeatures, load_npz

FORMAT = "genie-region-store"
VERSION = 1
MANIFEST = "store.json"
MANIFEST_KEYS = ("format", "version", "count", "max_regions", "dim", "dtype", "ids", "files")
DTYPES = ("float16", "float32")
CHUNK_BYTES = 64 * 2**20  # checksums read this much of a memmap at a time
BAR_BYTES = 256 * 2**20  # verifying a smaller store is quick enough to need no progress bar


def is_store(path: str | Path | None) -> bool:
    """A folder with a store.json; anything else is taken as a folder of `.npz` files."""
    return path is not None and (Path(path) / MANIFEST).is_file()


def _layout(count: int, max_regions: int, dim: int, dtype: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """File name -> (shape, dtype) of every array of a store; one definition for writer and reader."""
    return {"features.npy": ((count, max_regions, dim), dtype),
            "boxes.npy": ((count, max_regions, 4), "float32"),
            "num_regions.npy": ((count,), "int32"),
            "image_sizes.npy": ((count, 2), "int32")}


def build_store(src: str | Path, out: str | Path, max_regions: int = 36, dtype: str = "float16") -> dict:
    """Pack every `.npz` of `src` into a store at `out`, read exactly as FeatureSource reads them.

    Written into a temporary folder beside `out` and renamed at the end, so a failed or
    interrupted build never leaves a half store under `out`; an old store there is replaced
    only once the new one is complete, and anything else there is an error, never deleted."""
    start = time.perf_counter()
    src, out = Path(src), Path(out)
    if dtype not in DTYPES:
        raise GenieError(f"store dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if max_regions < 1:
        raise GenieError(f"max_regions must be positive, got {max_regions}")
    if out.exists() and not is_store(out):
        raise GenieError("exists and is not a region-feature store; not replacing it", out)
    files = _npz_files(src)
    with atomic_folder(out, unique=True) as tmp:  # two builds at once each write their own
        _write_arrays(tmp, files, max_regions, dtype)
        if (src / EXTRACTION).is_file():  # which detector made the regions travels with them
            shutil.copy2(src / EXTRACTION, tmp / EXTRACTION)
    return _stats(FeatureStore(out, verify=False), start)


def _npz_files(src: Path) -> list[tuple[str, Path]]:
    """(image id, file), sorted by id; `<id>.jpg.npz` wins over `<id>.npz`, as in FeatureSource."""
    if not src.is_dir():
        raise GenieError("region-feature folder not found", src)
    files: dict[str, Path] = {}
    for path in sorted(src.glob("*.npz")):
        image_id = path.name.removesuffix(".npz").removesuffix(".jpg")
        if path.is_file() and (path.name.endswith(".jpg.npz") or image_id not in files):
            files[image_id] = path
    if not files:
        raise GenieError("no .npz region-feature files in the folder", src)
    return sorted(files.items())


def _write_arrays(folder: Path, files: list[tuple[str, Path]], max_regions: int, dtype: str) -> None:
    """One image at a time into memmaps (memory stays bounded), checksummed as written."""
    dim = load_npz(files[0][1], max_regions).features.shape[1]
    shapes = _layout(len(files), max_regions, dim, dtype)
    arrays = {name: open_memmap(folder / name, mode="w+", dtype=dt, shape=shape)
              for name, (shape, dt) in shapes.items()}
    crcs = dict.fromkeys(arrays, 0)
    for row, (_, path) in enumerate(tqdm(files, desc="feature store", unit="image", leave=False)):
        regions = load_npz(path, max_regions, dim)
        if np.abs(regions.features).max(initial=0) > np.finfo(dtype).max:
            raise GenieError(f"region features exceed the {dtype} range; build with dtype float32", path)
        arrays["features.npy"][row] = regions.features
        arrays["boxes.npy"][row] = regions.boxes
        arrays["num_regions.npy"][row] = regions.mask.sum()
        arrays["image_sizes.npy"][row] = regions.image_size
        for name, array in arrays.items():
            crcs[name] = zlib.crc32(array[row:row + 1], crcs[name])
    for array in arrays.values():
        array.flush()
    manifest = {"format": FORMAT, "version": VERSION, "count": len(files), "max_regions": max_regions,
                "dim": dim, "dtype": dtype, "ids": [image_id for image_id, _ in files],
                "files": {name: {"shape": list(shape), "dtype": dt, "crc32": crcs[name]}
                          for name, (shape, dt) in shapes.items()}}
    with atomic_write(folder / MANIFEST) as handle:
        json.dump(manifest, handle)


def verify_store(path: str | Path) -> dict:
    """Open a store with every check (shapes, sizes, checksums); its stats for the CLI."""
    start = time.perf_counter()
    return _stats(FeatureStore(path, verify=True), start)


def _stats(store: FeatureStore, start: float) -> dict:
    return {"images": len(store), "max_regions": store.max_regions, "dim": store.dim, "dtype": store.dtype,
            "bytes": sum(file.stat().st_size for file in store.path.iterdir()),
            "seconds": round(time.perf_counter() - start, 3)}


class FeatureStore:
    """Read-only access to a store by image id. Pickles without its memmaps (a DataLoader worker
    would otherwise get a full copy of them) and maps the files again on first read."""

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        manifest = _read_manifest(self.path / MANIFEST)
        self.ids: list[str] = manifest["ids"]
        self.max_regions, self.dim, self.dtype = manifest["max_regions"], manifest["dim"], manifest["dtype"]
        self.files: dict[str, dict] = manifest["files"]
        self._rows = {image_id: row for row, image_id in enumerate(self.ids)}
        self._arrays: dict[str, np.ndarray] | None = self._open()
        if verify:
            self._verify()

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._rows

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": None}

    def read(self, image_id: str, max_regions: int) -> RegionFeatures | None:
        """Copies cut or padded to `max_regions` (the store's K may differ), features in the
        store's dtype: the model casts the whole batch at once, where numpy's float16 -> float32
        is ten times slower than the read itself. None when the image is not in the store."""
        row = self._rows.get(image_id)
        if row is None:
            return None
        if self._arrays is None:
            self._arrays = self._open()
        arrays = self._arrays
        k = min(int(arrays["num_regions.npy"][row]), max_regions)
        out = RegionFeatures(np.zeros((max_regions, self.dim), self.dtype), np.zeros((max_regions, 4), np.float32),
                             np.zeros(max_regions, bool), tuple(arrays["image_sizes.npy"][row].tolist()))
        out.features[:k], out.boxes[:k], out.mask[:k] = arrays["features.npy"][row, :k], arrays["boxes.npy"][row, :k], True
        return out

    def _open(self) -> dict[str, np.ndarray]:
        """Map every array file; one that is missing, truncated, resized or reshaped is an error."""
        arrays = {}
        for name, info in self.files.items():
            file = self.path / name
            if not file.is_file():
                raise GenieError("missing array file of the region-feature store", file)
            try:
                array = np.load(file, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:  # a bad .npy header
                raise GenieError(f"truncated or corrupt store file ({exc})", file) from None
            if (list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]
                    or array.offset + array.nbytes != file.stat().st_size):
                raise GenieError(f"truncated or corrupt store file: {file.stat().st_size} bytes of "
                                 f"{array.dtype} {array.shape}, {MANIFEST} says {info['dtype']} "
                                 f"{tuple(info['shape'])}", file)
            arrays[name] = array.view(np.ndarray)  # a plain view: np.memmap indexing is slower
        return arrays

    def _verify(self) -> None:
        total = sum(array.nbytes for array in self._arrays.values())
        with tqdm(total=total, unit="B", unit_scale=True, desc="verify store", leave=False,
                  disable=total <= BAR_BYTES) as bar:
            for name, array in self._arrays.items():
                if _crc32(array, bar.update) != self.files[name]["crc32"]:
                    raise GenieError("checksum mismatch: the file changed after the store was built "
                                     "(corrupt store; build it again)", self.path / name)


def _crc32(array: np.ndarray, progress=lambda n: None) -> int:
    """crc32 of the array's bytes, a chunk at a time, so a large memmap is never read in whole."""
    data = array.reshape(-1).view(np.uint8)
    crc = 0
    for start in range(0, data.size, CHUNK_BYTES):
        crc = zlib.crc32(data[start:start + CHUNK_BYTES], crc)
        progress(min(CHUNK_BYTES, data.size - start))
    return crc


def _read_manifest(path: Path) -> dict:
    """store.json, checked against the layout its sizes imply; any problem names the file."""
    if not path.is_file():
        raise GenieError(f"not a region-feature store (no {MANIFEST})", path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        missing = [key for key in MANIFEST_KEYS if key not in manifest]
        if missing:
            raise GenieError(f"{MANIFEST} lacks key {', '.join(missing)}", path)
        if manifest["format"] != FORMAT or manifest["version"] != VERSION:
            raise GenieError(f"not a {FORMAT} version {VERSION} manifest (format {manifest['format']!r}, "
                             f"version {manifest['version']!r})", path)
        expected = _layout(manifest["count"], manifest["max_regions"], manifest["dim"], manifest["dtype"])
        listed = {name: (tuple(info["shape"]), info["dtype"]) for name, info in manifest["files"].items()}
        ids = manifest["ids"]
        if (listed != expected or manifest["dtype"] not in DTYPES or not len(ids) == len(set(ids)) == manifest["count"]
                or not all(isinstance(info["crc32"], int) for info in manifest["files"].values())):
            raise GenieError(f"inconsistent {MANIFEST}: files, ids and sizes disagree", path)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise GenieError(f"invalid {MANIFEST} ({type(exc).__name__}: {exc})", path) from None
    return manifest
