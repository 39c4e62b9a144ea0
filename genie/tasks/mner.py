"""MNER: entity spans and types (Twitter-2015: PER LOC ORG OTHER; Twitter-2017: MISC for OTHER)."""

from __future__ import annotations

from genie.data_builders.mner import build_mner
from genie.demo import EntityDemo
from genie.demo.entities import GMNER_CONTEXTS, HINTS
from genie.eval.mner import evaluate_mner
from genie.labels import NER_TYPES, NER_WORDS
from genie.tasks.base import register
from genie.tasks.entity_text import EntityTextTask, type_phrases
from genie.tasks.index_format import EntityIndexFormat


class MNER(EntityTextTask):
    name = "mner"
    labels = NER_TYPES
    headline = "mner"
    metric = staticmethod(evaluate_mner)
    builder = staticmethod(build_mner)
    grounded = False
    phrases = type_phrases(NER_WORDS)
    label_words = tuple(NER_WORDS[t] for t in NER_TYPES)
    index_format = EntityIndexFormat(NER_TYPES, grounded=False)
    # The GMNER demo's tweets without their boxes (the image is still model input).
    demo = EntityDemo("mner", tuple((t, None) for t in GMNER_CONTEXTS), GMNER_CONTEXTS, boxes=False, hints=HINTS)



register(MNER())
