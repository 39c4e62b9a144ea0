"""GMNER: entity span + type + the box of the entity in the image, or "not in the image"."""

from __future__ import annotations

from eval.gmner import evaluate_gmner
from genie.records import Record
from genie.tasks.base import register
from genie.tasks.entity_text import EntityTextTask


class GMNER(EntityTextTask):
    name = "gmner"
    types = ("PER", "LOC", "ORG", "OTHER")
    headline = "gmner"
    grounded = True
    verbalizer = {"PER": "person", "LOC": "location", "ORG": "organization", "OTHER": "other"}

    def evaluate(self, gold: list[Record], pred: list[Record]) -> dict:
        return evaluate_gmner(gold, pred)


register(GMNER())
