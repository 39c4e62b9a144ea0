"""What every metric shares: percent P/R/F1 from counts, and pairing predictions with gold."""

from __future__ import annotations

from typing import TypedDict

from genie.errors import GenieError
from genie.records import Record


class Score(TypedDict):
    precision: float
    recall: float
    f1: float
    correct: int
    predicted: int
    gold: int


def prf(correct: int, predicted: int, gold: int) -> Score:
    """Precision/recall/F1 in percent, as papers report them; 0.0 (not NaN) on an empty denominator."""
    precision = 100.0 * correct / predicted if predicted else 0.0
    recall = 100.0 * correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision=precision, recall=recall, f1=f1,
                 correct=correct, predicted=predicted, gold=gold)


def pair_records(gold: list[Record], pred: list[Record]) -> tuple[list[tuple[Record, Record | None]], int]:
    """Each gold record with its prediction (None when there is none), and how many had none.

    A gold record without a prediction predicts nothing. What cannot be scored honestly is an
    error naming the first record: a predicted id absent from gold, an id used twice on either
    side, a prediction of other tokens than its gold record's, and a box with no area (IoU with
    it would be a silent 0)."""
    gold_by_id, pred_by_id = _index(gold, "gold"), _index(pred, "predicted")
    unknown = sorted(set(pred_by_id) - set(gold_by_id))
    if unknown:
        raise GenieError(f"predicted record id {unknown[0]!r} is not in gold ({len(unknown)} unknown ids)")
    pairs = [(record, pred_by_id.get(rid)) for rid, record in gold_by_id.items()]
    for gold_record, pred_record in pairs:
        _check_boxes(gold_record, "gold")
        if pred_record is not None:
            _check_boxes(pred_record, "predicted")
            if pred_record.tokens != gold_record.tokens:
                raise GenieError(f"predicted record {pred_record.id!r} has other tokens than the gold record "
                                 "with that id: predictions of another version of the data?")
    return pairs, sum(p is None for _, p in pairs)


def _check_boxes(record: Record, side: str) -> None:
    for entity in record.entities:
        for box in entity.boxes:
            if not (box[2] > box[0] and box[3] > box[1]):
                raise GenieError(f"{side} record {record.id!r}: entity {entity.text or entity.span!r} has a box "
                                 f"with no area, {box} (x2 <= x1 or y2 <= y1)")


def _index(records: list[Record], side: str) -> dict[str, Record]:
    by_id: dict[str, Record] = {}
    for record in records:
        if record.id in by_id:
            raise GenieError(f"{side} record id {record.id!r} appears more than once")
        by_id[record.id] = record
    return by_id
