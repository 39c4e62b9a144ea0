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

    A gold record without a prediction predicts nothing; a predicted id absent from gold, or an
    id used twice on either side, is an error."""
    gold_by_id, pred_by_id = _index(gold, "gold"), _index(pred, "predicted")
    unknown = sorted(set(pred_by_id) - set(gold_by_id))
    if unknown:
        raise GenieError(f"predicted record id {unknown[0]!r} is not in gold ({len(unknown)} unknown ids)")
    pairs = [(record, pred_by_id.get(rid)) for rid, record in gold_by_id.items()]
    return pairs, sum(p is None for _, p in pairs)


def _index(records: list[Record], side: str) -> dict[str, Record]:
    by_id: dict[str, Record] = {}
    for record in records:
        if record.id in by_id:
            raise GenieError(f"{side} record id {record.id!r} appears more than once")
        by_id[record.id] = record
    return by_id
