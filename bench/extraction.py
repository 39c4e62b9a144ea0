"""`make bench-extract`: seconds per image of `genie features extract` for every detector family,
tiny and at the family's real default size, on this machine.

Detectors are randomly initialised from their configs (`genie features random-detector`): the
speed of a forward pass does not depend on the weights, and no Hub is reachable here. Each row
runs the whole extraction path (open the JPEG, detect, select, write the `.npz`) over the same
640 x 480 photos, one at a time and in batches of 8, after one warm-up batch. Writes
`bench/extraction.json` and the table between the markers in docs/raw-posts-and-images.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.run import write_doc
from genie.regions.detectors import load_detector
from genie.regions.extract import extract_regions, folder_jobs
from genie.regions.random_detectors import FAMILIES, save_random_detector

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "raw-posts-and-images.md"
START, END = "<!-- extraction:start -->", "<!-- extraction:end -->"
OPTIONS = {"grounding_dino": {"prompt": "person. object."}}
HUB_NAMES = {  # the published checkpoint each base row has the architecture of
    "detr": "facebook/detr-resnet-50", "rt_detr": "PekingU/rtdetr_r50vd", "rt_detr_v2": "PekingU/rtdetr_v2_r50vd",
    "yolos": "hustvl/yolos-base", "grounding_dino": "IDEA-Research/grounding-dino-tiny",
    "owlv2": "google/owlv2-base-patch16-ensemble", "grid": "openai/clip-vit-base-patch32",
    "vit": "google/vit-base-patch16-224",
}


def photos(folder: Path, n: int) -> Path:
    """n random 640 x 480 JPEGs (smooth noise, so they compress like photos)."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        small = rng.integers(0, 255, (30, 40, 3), np.uint8)
        Image.fromarray(small).resize((640, 480), Image.BILINEAR).save(folder / f"{k:03d}.jpg", quality=90)
    return folder


def measure(model: Path, images: Path, work: Path, family: str) -> dict:
    """Seconds per image at batch 1 and 8 (after a warm-up batch), the region dim and the size."""
    detector = load_detector(model, max_regions=36, **OPTIONS.get(family, {}))
    jobs = folder_jobs(images)
    row = {"dim": detector.dim, "parameters_m": round(sum(p.numel() for p in detector.model.parameters()) / 1e6, 1)}
    for batch in (1, 8):
        extract_regions(jobs[:batch], work / f"warm-up{batch}", detector, batch_size=batch)
        started = time.perf_counter()
        extract_regions(jobs, work / f"batch{batch}", detector, batch_size=batch)
        row[f"batch{batch}_s"] = (time.perf_counter() - started) / len(jobs)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-extract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8, help="photos per timed pass")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        images = photos(Path(tmp) / "images", args.images)
        for family in args.families:
            for size in ("tiny", "base"):
                model = save_random_detector(family, Path(tmp) / f"{family}-{size}", size=size)
                work = Path(tmp) / f"out-{family}-{size}"
                row = {"family": family, "size": size, "hub": HUB_NAMES[family],
                       **measure(model, images, work, family)}
                rows.append(row)
                shutil.rmtree(work)
                print(json.dumps(row), flush=True)
                shutil.rmtree(model)
    machine = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"
    results = {"date": time.strftime("%Y-%m-%d"), "machine": machine,
               "torch_threads": torch.get_num_threads(), "images": args.images, "rows": rows}
    (REPO / "bench" / "extraction.json").write_text(json.dumps(results, indent=2) + "\n")
    write_doc(args.doc, table(results), START, END)
    return 0


def table(results: dict) -> str:
    intro = (f"Measured {results['date']} on {results['machine']}, {results['torch_threads']} torch threads, "
             f"{results['images']} photos of 640 x 480, K = 36, features `query`, random weights "
             f"(`make bench-extract`):")
    lines = [intro, "",
             "| family | size | architecture | parameters | region dim | s / image, batch 1 | s / image, batch 8 |",
             "|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        built = f"as `{row['hub']}`" if row["size"] == "base" else "a few layers of width 64"
        lines.append(f"| {row['family']} | {row['size']} | {built} | {row['parameters_m']} M | {row['dim']} "
                     f"| {row['batch1_s']:.3f} | {row['batch8_s']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
