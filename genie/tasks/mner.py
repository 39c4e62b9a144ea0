"""MNER: entity spans and types (Twitter-2015: PER LOC ORG OTHER; Twitter-2017: MISC for OTHER)."""

from __future__ import annotations

from eval.mner import evaluate_mner
from genie.records import Record
from genie.tasks.base import register
from genie.tasks.entity_text import EntityTextTask


class MNER(EntityTextTask):
    name = "mner"
    types = ("PER", "LOC", "ORG", "OTHER", "MISC")
    headline = "mner"
    grounded = False
    verbalizer = {"PER": "person", "LOC": "location", "ORG": "organization", "OTHER": "other",
                  "MISC": "miscellaneous"}

    def evaluate(self, gold: list[Record], pred: list[Record]) -> dict:
        return evaluate_mner(gold, pred)


register(MNER())
