"""GMNER: entity span + type + the box of the entity in the image, or "not in the image"."""

from __future__ import annotations

from genie.data_builders.gmner import build_gmner
from genie.demo import EntityDemo
from genie.demo.entities import GMNER_CONTEXTS, HINTS
from genie.eval.gmner import gmner_report
from genie.labels import NER_WORDS
from genie.tasks.base import register
from genie.tasks.entity_text import EntityTextTask, type_phrases
from genie.tasks.index_format import EntityIndexFormat

TYPES = ("PER", "LOC", "ORG", "OTHER")


class GMNER(EntityTextTask):
    name = "gmner"
    labels = TYPES
    headline = "gmner"
    metric = staticmethod(gmner_report)
    builder = staticmethod(build_gmner)
    grounded = True
    phrases = type_phrases({t: NER_WORDS[t] for t in TYPES})
    label_words = tuple(NER_WORDS[t] for t in TYPES)
    index_format = EntityIndexFormat(TYPES, grounded=True)
    demo = EntityDemo("gmner", tuple((t, None) for t in TYPES), GMNER_CONTEXTS, hints=HINTS)



register(GMNER())
