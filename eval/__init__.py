"""Evaluation metrics for genie's tasks (REFERENCE section 4)."""

from eval.boxes import iou_matrix
from eval.fmnerg import evaluate_fmnerg
from eval.gmner import GmnerResult, evaluate_gmner, gmner_report
from eval.jmere import evaluate_jmere
from eval.mner import evaluate_mner
from eval.mre import evaluate_mre
from eval.scores import Score, pair_records, prf

__all__ = ["GmnerResult", "Score", "evaluate_fmnerg", "evaluate_gmner", "evaluate_jmere", "evaluate_mner",
           "evaluate_mre", "gmner_report", "iou_matrix", "pair_records", "prf"]
