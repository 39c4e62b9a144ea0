"""Evaluation metrics for genie's tasks (REFERENCE section 4)."""

from eval.boxes import iou_matrix
from eval.gmner import GmnerResult, Score, evaluate_gmner, prf

__all__ = ["GmnerResult", "Score", "evaluate_gmner", "iou_matrix", "prf"]
