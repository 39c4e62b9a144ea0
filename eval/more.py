"""MORE, counted as its paper's code does (`modules/metrics.py`, REFERENCE section 1): accuracy over
all records, and micro P/R/F1 where the negative label (genie's None, which the builder maps the
release's to) is neither a gold nor a predicted positive. A generation the parser could not read
(`unreadable`) is a predicted relation that matches nothing."""

from __future__ import annotations

from genie.errors import GenieError
from genie.eval.scores import Score, pair_records, prf
from genie.labels import NO_RELATION
from genie.records import Record

UNREADABLE = "<unreadable>"


def more_label(record: Record) -> str:
    """The relation from the record's entity (0) to its given object (0), or None."""
    relations = [r for r in record.relations if r.type != NO_RELATION]
    if len(relations) > 1:
        raise GenieError(f"record {record.id!r}: a MORE record holds at most one relation, got {len(relations)}")
    if relations and (relations[0].head, relations[0].tail, relations[0].tail_object) != (0, 0, True):
        raise GenieError(f"record {record.id!r}: a MORE relation links entity 0 to object 0 (tail_object)")
    return relations[0].type if relations else NO_RELATION


def evaluate_more(gold: list[Record], pred: list[Record]) -> dict:
    pairs, missing = pair_records(gold, pred)
    labels = [(more_label(g), NO_RELATION if p is None else UNREADABLE if p.unreadable else more_label(p))
              for g, p in pairs]
    kinds = sorted({label for pair in labels for label in pair} - {NO_RELATION, UNREADABLE})
    return {"more": _score(labels), "accuracy": 100.0 * sum(g == p for g, p in labels) / len(labels) if labels else 0.0,
            "per_relation": {k: _score(labels, k) for k in kinds}, "missing_predictions": missing}


def _score(labels: list[tuple[str, str]], only: str | None = None) -> Score:
    """P/R/F1 over the positive labels (or only `only`)."""
    def counted(label: str) -> bool:
        return label != NO_RELATION if only is None else label == only

    correct = sum(counted(g) and g == p for g, p in labels)
    return prf(correct, sum(counted(p) for _, p in labels), sum(counted(g) for g, _ in labels))
