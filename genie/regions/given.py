"""Objects given as input (`Record.objects`, MORE's "the object in the image") as the model's
first regions.

A detector's regions do not come with the dataset's object boxes, and a given box has no
feature vector of its own here (features are read, not computed, at training time). So each
given object takes the vector of the image's real region that overlaps its box most (IoU) and
keeps its own box; it goes first, in the order given, and the other real regions follow, and the
model's region encoder marks it as given (`RegionFeatures.given`). The model thus finds the
object the record is about, with what the detector saw there. With no real region (a text-only run) the object is
its box alone, with a zero vector.
"""

from __future__ import annotations

import numpy as np

from genie.eval.boxes import iou_matrix
from genie.regions.npz import RegionFeatures


def objects_first(regions: RegionFeatures, boxes: list) -> RegionFeatures:
    """`regions` with one region per given box first (the best-overlapping real region's vector,
    the given box), then the remaining real regions, then padding; still K regions."""
    k = len(regions.mask)
    real = list(np.flatnonzero(regions.mask))
    features, out_boxes = [], []
    overlaps = iou_matrix(np.asarray(boxes, np.float32), regions.boxes[real]) if real and boxes else None
    for n, box in enumerate(boxes[:k]):
        if overlaps is not None and real:
            best = max(range(len(real)), key=lambda j: overlaps[n, j])
            features.append(regions.features[real[best]])
            overlaps = np.delete(overlaps, best, axis=1)
            del real[best]
        else:
            features.append(np.zeros(regions.features.shape[1], regions.features.dtype))
        out_boxes.append(np.asarray(box, np.float32))
    rows = len(features)
    out = RegionFeatures(np.zeros_like(regions.features), np.zeros_like(regions.boxes), np.zeros(k, bool),
                         regions.image_size, given=len(features))
    if rows:
        out.features[:rows], out.boxes[:rows] = np.stack(features), np.stack(out_boxes)
    rest = real[:k - rows]
    out.features[rows:rows + len(rest)], out.boxes[rows:rows + len(rest)] = regions.features[rest], regions.boxes[rest]
    out.mask[:rows + len(rest)] = True
    return out
