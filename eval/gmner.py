"""GMNER metrics (REFERENCE section 4): GMNER, MNER and EEG, micro-averaged over a test set.

Predictions are matched to gold one-to-one per record by a maximum matching, so a duplicated
prediction or the order of predictions cannot raise the score. What the model generated but the
parser could not read (a record's `unreadable`) counts as predicted and wrong, as TIGER's
evaluation counts it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Hashable, TypedDict

import numpy as np

from genie.errors import GenieError
from genie.eval.boxes import iou_matrix
from genie.eval.scores import Score, pair_records, prf
from genie.records import Entity, Record

IOU_THRESHOLD = 0.5


class GmnerResult(TypedDict):
    gmner: Score
    mner: Score
    eeg: Score
    missing_predictions: int


def last_per_span(records: list[Record]) -> list[Record]:
    """Each record's predictions with one entity per span, the last written: how H-Index's released
    metric reads predictions (a dict from span to prediction), for side-by-side numbers."""
    return [replace(r, entities=list({e.span: e for e in r.entities}.values())) for r in records]


def gmner_report(gold: list[Record], pred: list[Record]) -> dict:
    """The GMNER task's scores, and beside them (`as_hindex`) the same read as H-Index's metric
    reads predictions (`last_per_span`), as its published table was counted."""
    as_hindex = evaluate_gmner(gold, last_per_span(pred))
    return {**evaluate_gmner(gold, pred), "as_hindex": {k: as_hindex[k] for k in ("gmner", "mner", "eeg")}}


def _grounded(pred: Entity, gold: Entity) -> bool:
    """Both not in the image, or the predicted box overlaps some gold box with IoU >= 0.5. A
    prediction said to be in the image without a box (`in_image`) matches neither: as in H-Index's
    metric, "in the image" never matches an ungroundable gold entity."""
    if not pred.groundable or not gold.groundable:
        return not pred.groundable and not gold.groundable
    if not pred.boxes or not gold.boxes:
        return False
    return bool(iou_matrix(pred.boxes, gold.boxes).max() >= IOU_THRESHOLD)


def _max_matching(allowed: np.ndarray) -> int:
    """Size of a maximum matching of predictions (rows) to gold entities (columns).

    Augmenting paths (Kuhn's algorithm) rather than first-fit, whose count would depend on the
    order of predictions; records hold a handful of entities, so this is cheap.
    """
    owner = [-1] * allowed.shape[1]

    def augment(p: int, seen: list[bool]) -> bool:
        for g in np.flatnonzero(allowed[p]):
            if not seen[g]:
                seen[g] = True
                if owner[g] < 0 or augment(owner[g], seen):
                    owner[g] = p
                    return True
        return False

    return sum(augment(p, [False] * allowed.shape[1]) for p in range(allowed.shape[0]))


def evaluate_gmner(
    gold: list[Record],
    pred: list[Record],
    type_of: Callable[[Entity], Hashable] = lambda e: e.type,
) -> GmnerResult:
    """Micro GMNER (span+type+box), MNER (span+type) and EEG (span+box) scores.

    `type_of` picks the type that must match, so FMNERG can score fine or coarse types with the
    same code. A gold record without a prediction predicts nothing and is counted in
    `missing_predictions`; a predicted record id absent from gold is an error.
    """
    pairs, missing = pair_records(gold, pred)
    correct = {"gmner": 0, "mner": 0, "eeg": 0}
    n_pred = n_gold = 0
    for gold_rec, pred_rec in pairs:
        pred_ents = pred_rec.entities if pred_rec else []
        for p in pred_ents:
            if len(p.boxes) > 1:  # several boxes would let a prediction try every region
                raise GenieError(f"record {gold_rec.id!r}: predicted entity {p.span} has "
                                 f"{len(p.boxes)} boxes, at most 1 allowed")
        shape = (len(pred_ents), len(gold_rec.entities))
        span = np.zeros(shape, dtype=bool)
        typed = np.zeros(shape, dtype=bool)
        grounded = np.zeros(shape, dtype=bool)
        for i, p in enumerate(pred_ents):
            for j, g in enumerate(gold_rec.entities):
                if p.span == g.span:
                    span[i, j] = True
                    typed[i, j] = type_of(p) == type_of(g)
                    grounded[i, j] = _grounded(p, g)
        correct["gmner"] += _max_matching(span & typed & grounded)
        correct["mner"] += _max_matching(span & typed)
        correct["eeg"] += _max_matching(span & grounded)
        n_pred += len(pred_ents) + (pred_rec.unreadable if pred_rec else 0)
        n_gold += len(gold_rec.entities)
    return GmnerResult(
        gmner=prf(correct["gmner"], n_pred, n_gold),
        mner=prf(correct["mner"], n_pred, n_gold),
        eeg=prf(correct["eeg"], n_pred, n_gold),
        missing_predictions=missing,
    )
