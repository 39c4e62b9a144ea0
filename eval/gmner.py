"""GMNER metrics (REFERENCE section 4): GMNER, MNER and EEG, micro-averaged over a test set.

Predictions are matched to gold one-to-one per record by a maximum matching, so a duplicated
prediction or the order of predictions cannot raise the score.
"""

from __future__ import annotations

from typing import Callable, TypedDict

import numpy as np

from eval.boxes import iou_matrix
from genie.errors import GenieError
from genie.records import Entity, Record

IOU_THRESHOLD = 0.5


class Score(TypedDict):
    precision: float
    recall: float
    f1: float
    correct: int
    predicted: int
    gold: int


class GmnerResult(TypedDict):
    gmner: Score
    mner: Score
    eeg: Score
    missing_predictions: int


def prf(correct: int, predicted: int, gold: int) -> Score:
    """Precision/recall/F1 in percent, as papers report them; 0.0 (not NaN) on an empty denominator."""
    precision = 100.0 * correct / predicted if predicted else 0.0
    recall = 100.0 * correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision=precision, recall=recall, f1=f1,
                 correct=correct, predicted=predicted, gold=gold)


def _grounded(pred: Entity, gold: Entity) -> bool:
    """Both ungroundable, or the predicted box overlaps some gold box with IoU >= 0.5."""
    if not pred.boxes or not gold.boxes:
        return not pred.boxes and not gold.boxes
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


def _index(records: list[Record], side: str) -> dict[str, Record]:
    by_id: dict[str, Record] = {}
    for record in records:
        if record.id in by_id:
            raise GenieError(f"{side} record id {record.id!r} appears more than once")
        by_id[record.id] = record
    return by_id


def evaluate_gmner(
    gold: list[Record],
    pred: list[Record],
    type_of: Callable[[Entity], str] = lambda e: e.type,
) -> GmnerResult:
    """Micro GMNER (span+type+box), MNER (span+type) and EEG (span+box) scores.

    `type_of` picks the type that must match, so FMNERG can score fine or coarse types with the
    same code. A gold record without a prediction predicts nothing and is counted in
    `missing_predictions`; a predicted record id absent from gold is an error.
    """
    gold_by_id, pred_by_id = _index(gold, "gold"), _index(pred, "predicted")
    unknown = sorted(set(pred_by_id) - set(gold_by_id))
    if unknown:
        raise GenieError(f"predicted record id {unknown[0]!r} is not in gold "
                         f"({len(unknown)} unknown ids)")
    correct = {"gmner": 0, "mner": 0, "eeg": 0}
    n_pred = n_gold = 0
    for rid, gold_rec in gold_by_id.items():
        pred_ents = pred_by_id[rid].entities if rid in pred_by_id else []
        for p in pred_ents:
            if len(p.boxes) > 1:  # several boxes would let a prediction try every region
                raise GenieError(f"record {rid!r}: predicted entity {p.span} has "
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
        n_pred += len(pred_ents)
        n_gold += len(gold_rec.entities)
    return GmnerResult(
        gmner=prf(correct["gmner"], n_pred, n_gold),
        mner=prf(correct["mner"], n_pred, n_gold),
        eeg=prf(correct["eeg"], n_pred, n_gold),
        missing_predictions=len(set(gold_by_id) - set(pred_by_id)),
    )
