"""MNER: exact span + type, micro P/R/F1, with a per-type table (REFERENCE section 4)."""

from __future__ import annotations

from dataclasses import replace

from genie.eval.gmner import evaluate_gmner, last_per_span
from genie.records import Record


def evaluate_mner(gold: list[Record], pred: list[Record]) -> dict:
    """The span+type part of the GMNER matching, overall and restricted to each type. An unreadable
    prediction has no type: it counts in the overall score only. `as_hindex`: the same with one
    prediction per span, the last written, as H-Index's metric reads predictions."""
    overall = evaluate_gmner(gold, pred)
    types = sorted({e.type for r in [*gold, *pred] for e in r.entities})
    per_type = {t: evaluate_gmner(_only(gold, t), _only(pred, t))["mner"] for t in types}
    return {"mner": overall["mner"], "per_type": per_type, "missing_predictions": overall["missing_predictions"],
            "as_hindex": {"mner": evaluate_gmner(gold, last_per_span(pred))["mner"]}}


def _only(records: list[Record], kind: str) -> list[Record]:
    return [replace(r, entities=[e for e in r.entities if e.type == kind], unreadable=0) for r in records]
