"""MRE (REFERENCE section 4): micro P/R/F1 over the relations that are not None (a None
prediction is no prediction), accuracy over all pairs, and a per-relation table. A generation the
parser could not read (`unreadable`) is a predicted relation that matches nothing."""

from __future__ import annotations

from typing import Callable

from genie.errors import GenieError
from genie.eval.scores import Score, pair_records, prf
from genie.labels import NO_RELATION
from genie.records import Record

UNREADABLE = "<unreadable>"


def mre_label(record: Record) -> str:
    """The relation of the record's pair (entities 0 and 1), or None; a relation typed None counts
    as none."""
    relations = [r for r in record.relations if r.type != NO_RELATION]
    if len(relations) > 1:
        raise GenieError(f"record {record.id!r}: an MRE record holds at most one relation, got {len(relations)}")
    if relations and (relations[0].head, relations[0].tail) != (0, 1):
        raise GenieError(f"record {record.id!r}: an MRE relation links entity 0 (head) to entity 1 (tail)")
    return relations[0].type if relations else NO_RELATION


def evaluate_mre(gold: list[Record], pred: list[Record]) -> dict:
    pairs, missing = pair_records(gold, pred)
    labels = [(mre_label(g), _predicted_label(p)) for g, p in pairs]
    kinds = sorted({label for pair in labels for label in pair} - {NO_RELATION, UNREADABLE})
    accuracy = 100.0 * sum(g == p for g, p in labels) / len(labels) if labels else 0.0
    return {"mre": _score(labels, lambda label: label != NO_RELATION), "accuracy": accuracy,
            "per_relation": {k: _score(labels, lambda label, k=k: label == k) for k in kinds},
            "missing_predictions": missing}


def _predicted_label(pred: Record | None) -> str:
    if pred is None:
        return NO_RELATION
    return UNREADABLE if pred.unreadable else mre_label(pred)


def _score(labels: list[tuple[str, str]], counted: Callable[[str], bool]) -> Score:
    """P/R/F1 over the (gold, predicted) labels that `counted` keeps."""
    correct = sum(counted(g) and g == p for g, p in labels)
    return prf(correct, sum(counted(p) for _, p in labels), sum(counted(g) for g, _ in labels))
