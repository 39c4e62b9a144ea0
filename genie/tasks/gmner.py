"""GMNER: entity span + type + the box of the entity in the image, or "not in the image"."""

from __future__ import annotations

from eval.gmner import evaluate_gmner
from genie.records import Record
from genie.tasks.base import Parsed, Target, Task, register
from genie.tasks.entity_text import EntityTextFormat


class GMNER(Task):
    name = "gmner"
    types = ("PER", "LOC", "ORG", "OTHER")
    headline = "gmner"
    grounded = True

    def __init__(self) -> None:
        self.text_format = EntityTextFormat(
            {"PER": "person", "LOC": "location", "ORG": "organization", "OTHER": "other"}, grounded=True)

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        return self.text_format.linearize(record, groundable)

    def parse(self, text: str, record: Record) -> Parsed:
        return self.text_format.parse(text, record)

    def evaluate(self, gold: list[Record], pred: list[Record]) -> dict:
        return evaluate_gmner(gold, pred)


register(GMNER())
