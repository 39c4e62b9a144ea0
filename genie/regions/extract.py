"""`genie features extract`: images -> VinVL-layout region files, with a Hugging Face detector.

The published systems' VinVL extractor no longer installs; any transformers detector
(`genie.regions.detectors`) makes the same layout here: `<image id>.jpg.npz` with `box_features`,
`bounding_boxes` (original-image pixels, by score), `image_h`, `image_w`, `num_boxes` and
`scores`. Each file is written atomically, so a killed extraction resumes by skipping the
images already done; `extraction.json` names the detector and its settings, so two detectors'
regions never mix in one folder, and a run trained on the folder records where they came from.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genie.errors import GenieError
from genie.instructions import read_examples
from genie.io import atomic_write
from genie.options import OnBadImage, check
from genie.regions.images import (
    MAX_PIXELS,
    BadImage,
    find_image,
    image_id,
    list_images,
    open_image,
)
from genie.regions.manifest import MANIFEST, describe, new_manifest, read_manifest
from genie.regions.store import build_store, is_store

BAD_LIST = "bad_images.jsonl"
logger = logging.getLogger(__name__)


@dataclass
class ImageJob:
    """One image to extract: the id its region file is named by, and its file (None: not found)."""

    image_id: str
    path: Path | None
    reference: str  # as the user named it, for the bad-image list


def folder_jobs(folder: Path) -> list[ImageJob]:
    """Every image of a folder; two files with one id (`1.jpg`, `1.png`) are an error."""
    jobs: dict[str, ImageJob] = {}
    for path in list_images(folder):
        key = image_id(path)
        if key in jobs:
            raise GenieError(f"two images with id {key}: {jobs[key].path.name} and {path.name}", folder)
        jobs[key] = ImageJob(key, path, path.name)
    if not jobs:
        raise GenieError("no images in the folder (.jpg, .png, .webp, .gif, .bmp, .tif)", folder)
    return list(jobs.values())


def record_jobs(records_file: Path, folder: Path) -> list[ImageJob]:
    """The images a record (or instruction) file names, each once, looked up in `folder` with
    the usual extensions; one it lacks is a job without a file (reported as missing)."""
    records, _ = read_examples(records_file)
    ids = dict.fromkeys(r.image_id for r in records if r.image_id)
    if not ids:
        raise GenieError("the records name no images", records_file)
    return [ImageJob(key, find_image(key, folder), key) for key in ids]


def claim_folder(out: Path, manifest: dict) -> None:
    """Make `out` this extraction's folder, or check it already is: another detector's regions,
    or `.npz` files of unknown origin, are never mixed with these."""
    old = read_manifest(out)
    if old is not None:
        if {k: old.get(k) for k in ("detector", "dim")} != {k: manifest[k] for k in ("detector", "dim")}:
            raise GenieError(f"holds {describe(old)}; this extraction is {describe(manifest)}: regions of two "
                             f"extractors are never mixed in one folder (use another --out)", out)
        return
    if out.is_dir() and any(out.glob("*.npz")):
        raise GenieError(f"holds .npz files but no {MANIFEST}: not mixing them with new ones (use another --out)",
                         out)
    with atomic_write(out / MANIFEST) as handle:
        json.dump(manifest, handle, indent=2)


def region_file(out: Path, key: str) -> Path:
    return out / f"{key}.jpg.npz"


def extract_regions(jobs: list[ImageJob], out: Path, detector, batch_size: int = 8, on_bad_image: str = "skip",
                    max_pixels: int = MAX_PIXELS) -> dict:
    """Write the region file of every job not done yet; returns the run's summary. Bad images
    (unreadable, too small, or one the detector cannot take) are skipped and listed in
    `bad_images.jsonl` (or, `on_bad_image="error"`, stop the run with one line; the files
    written so far stay)."""
    check(OnBadImage, on_bad_image, "on_bad_image")
    if batch_size < 1:
        raise GenieError(f"batch size must be positive, got {batch_size}")
    started = time.perf_counter()
    claim_folder(out, new_manifest(detector))
    todo = [job for job in jobs if not region_file(out, job.image_id).is_file()]
    bad: list[dict] = []
    written = empty = 0
    with tqdm(total=len(todo), desc="extract regions", unit="image") as bar:
        for begin in range(0, len(todo), batch_size):
            chunk = todo[begin:begin + batch_size]
            pictures = []
            for job in chunk:
                try:
                    if job.path is None:
                        raise BadImage("no such file")
                    picture = open_image(job.path, max_pixels)
                    pictures.append((job, picture, detector.prepare(picture.image)))
                except BadImage as exc:
                    _bad(bad, job, exc, on_bad_image)
            for (job, picture, _), detections in zip(pictures, _detect(detector, pictures)):
                if isinstance(detections, BadImage):
                    _bad(bad, job, detections, on_bad_image)
                    continue
                _write(region_file(out, job.image_id), detections, picture)
                written += 1
                empty += len(detections.scores) == 0
            bar.update(len(chunk))
    _write_bad_list(out, bad, {job.reference for job in todo})
    seconds = time.perf_counter() - started
    return {"out": str(out), "images": len(jobs), "written": written, "skipped": len(jobs) - len(todo),
            "bad": len(bad), **({"bad_list": str(out / BAD_LIST)} if bad else {}), "no_regions": empty,
            "seconds": round(seconds, 2), "images_per_second": round(written / max(seconds, 1e-9), 2),
            "dim": detector.dim, "detector": detector.settings()["model"]}


def _bad(bad: list[dict], job: ImageJob, problem: BadImage, on_bad_image: str) -> None:
    """A bad image: listed, or (`on_bad_image="error"`) the one line that stops the run."""
    if on_bad_image == "error":
        raise GenieError(f"bad image: {problem}", job.path or job.reference) from None
    bad.append({"image": job.reference, "reason": str(problem)})


def _detect(detector, pictures: list[tuple]) -> list:
    """Each (job, picture, model input)'s detections, or the BadImage it is. A batch the detector
    fails on is run one image at a time, and an image it fails on alone is bad: Grounding DINO
    picks its queries among the feature-map cells, and a banner's map can hold fewer than that."""
    if not pictures:
        return []
    try:
        return detector.detect([picture.image for _, picture, _ in pictures], [inputs for *_, inputs in pictures])
    except (RuntimeError, ValueError, IndexError) as exc:
        if len(pictures) == 1:
            width, height = pictures[0][1].image.size
            return [BadImage(f"the detector fails on {width}x{height} pixels ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())})")]
    return [found for picture in pictures for found in _detect(detector, [picture])]


def _write(path: Path, detections, picture) -> None:
    """One VinVL-layout file, atomically; boxes scaled from the decoded picture to the original."""
    boxes = detections.boxes.astype(np.float32) * np.float32(picture.scale)
    width, height = picture.size
    boxes = np.clip(boxes, 0, np.array([width, height, width, height], np.float32))
    arrays = {"box_features": detections.features.astype(np.float32), "bounding_boxes": boxes,
              "scores": detections.scores.astype(np.float32), "num_boxes": np.array(len(boxes)),
              "image_h": np.array(height), "image_w": np.array(width)}
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)


def _write_bad_list(out: Path, bad: list[dict], tried: set[str]) -> None:
    """The folder's bad images, one JSON line each (removed when there are none): this run's,
    and an earlier run's that this one did not try again (`genie predict` extracts chunk by chunk)."""
    path = out / BAD_LIST
    earlier = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.is_file() else []
    listed = [row for row in earlier if row.get("image") not in tried] + bad
    if not listed:
        path.unlink(missing_ok=True)
        return
    with atomic_write(path) as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in listed)
    if not bad:
        return
    shown = "; ".join(f"{row['image']}: {row['reason']}" for row in bad[:3])
    logger.warning("%d bad image(s) skipped, listed in %s (%s%s)", len(bad), path, shown,
                   "; ..." if len(bad) > 3 else "")


def extract_to_store(jobs: list[ImageJob], store: Path, detector, **options) -> dict:
    """The same extraction packed into a region-feature store at `store`. The `.npz` files are
    staged in `<store>.regions/` (where a killed run resumes) and removed once packed."""
    staging = store.with_name(store.name + ".regions")
    if is_store(store) and not staging.exists():
        raise GenieError("a finished store is never extended; extract into a new --out", store)
    summary = extract_regions(jobs, staging, detector, **options)
    packed = build_store(staging, store, max_regions=detector.settings()["max_regions"])
    if not summary["bad"]:
        shutil.rmtree(staging)
    return {**summary, "out": str(store), "store": packed}
