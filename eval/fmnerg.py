"""FMNERG (REFERENCE section 4): GMNER scored with the fine type (the headline), with the coarse
type, without the box (FMNER), and without the type (EEG)."""

from __future__ import annotations

from genie.eval.gmner import evaluate_gmner
from genie.records import Record


def evaluate_fmnerg(gold: list[Record], pred: list[Record]) -> dict:
    """An empty prediction adds nothing to the predicted count and keeps every gold entity (TIGER's
    released code lowered the gold count instead)."""
    fine = evaluate_gmner(gold, pred, type_of=lambda e: (e.type, e.fine_type))
    coarse = evaluate_gmner(gold, pred)
    return {"fmnerg": fine["gmner"], "coarse_gmner": coarse["gmner"], "fmner": fine["mner"],
            "eeg": fine["eeg"], "missing_predictions": fine["missing_predictions"]}
