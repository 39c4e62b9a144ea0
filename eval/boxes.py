"""Box overlap for grounding metrics, delegated to pycocotools so it matches COCO-style tools.

Conventions of `pycocotools.mask.iou` (checked by hand, see tests/test_boxes.py):
- boxes are continuous pixel coordinates: width = x2 - x1, with no +1
  ([0,0,2,2] vs [1,1,3,3] -> 1/7, not the 4/14 of the +1 convention);
- `iscrowd=1` would divide by the predicted box's area only, so we always pass 0 (plain IoU);
- a zero-area (or inverted, x2 < x1) box overlaps nothing: IoU 0, never NaN;
- empty inputs come back as a plain `[]`, so they are shaped here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from pycocotools import mask as coco_mask

Boxes = Sequence[Sequence[float]] | np.ndarray


def _xywh(boxes: Boxes) -> np.ndarray:
    """xyxy -> the xywh float64 array pycocotools expects; rejects anything but (n, 4)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (n, 4), got {arr.shape}")
    return np.column_stack([arr[:, :2], arr[:, 2:] - arr[:, :2]])


def iou_matrix(a: Boxes, b: Boxes) -> np.ndarray:
    """IoU of every xyxy box in `a` (rows) with every xyxy box in `b` (columns)."""
    xa, xb = _xywh(a), _xywh(b)
    if len(xa) == 0 or len(xb) == 0:
        return np.zeros((len(xa), len(xb)))
    return np.asarray(coco_mask.iou(xa, xb, np.zeros(len(xb), dtype=np.uint8)), dtype=np.float64)
