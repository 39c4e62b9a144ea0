"""Evaluation metrics for genie's tasks (REFERENCE section 4)."""

from genie.eval.boxes import iou_matrix
from genie.eval.fmnerg import evaluate_fmnerg
from genie.eval.gmner import GmnerResult, evaluate_gmner, gmner_report
from genie.eval.jmere import evaluate_jmere
from genie.eval.mner import evaluate_mner
from genie.eval.mre import evaluate_mre
from genie.eval.scores import Score, pair_records, prf

__all__ = ["GmnerResult", "Score", "evaluate_fmnerg", "evaluate_gmner", "evaluate_jmere", "evaluate_mner",
           "evaluate_mre", "gmner_report", "iou_matrix", "pair_records", "prf"]
