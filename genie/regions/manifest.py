"""Where regions came from: `extraction.json`, written by `genie features extract` beside the
regions it makes (and kept in a store packed from them), names the detector and its settings, so
two detectors' regions never mix in one folder and a run trained on them records their origin.
It sits below the extraction, the store and the demo, which all read or write it.
"""

from __future__ import annotations

import json
from pathlib import Path

from genie.errors import GenieError

MANIFEST = "extraction.json"
ORIGINS = "regions.json"  # in a checkpoint: the MANIFEST of the regions each task was trained on
FORMAT = "genie-region-extraction"
VERSION = 1
DESCRIBED = ("features", "max_regions", "nms_iou", "prompt")  # the settings a message names (all are compared)


def read_manifest(folder: str | Path | None) -> dict | None:
    """The `extraction.json` of a region folder or store: which detector made its regions."""
    path = Path(folder) / MANIFEST if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT or not isinstance(manifest.get("detector"), dict):
            raise ValueError(f"not a {FORMAT} manifest")
    except (ValueError, AttributeError) as exc:
        raise GenieError(f"invalid {MANIFEST} ({exc})", path) from None
    return manifest


def describe(manifest: dict | None) -> str:
    """One phrase naming where regions came from, for warnings and run logs."""
    if manifest is None:
        return "regions of unknown origin (no extraction.json)"
    detector = manifest["detector"]
    details = ", ".join(f"{k} {detector[k]}" for k in DESCRIBED if detector.get(k) is not None)
    return f"{detector.get('family', '?')} detector {detector.get('model', '?')} ({details}, dim {manifest['dim']})"


def new_manifest(detector) -> dict:
    return {"format": FORMAT, "version": VERSION, "detector": detector.settings(), "dim": detector.dim}
