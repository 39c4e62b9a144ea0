"""FMNERG: GMNER with a fine type under each coarse one (8 coarse, 51 fine; TIGER's target)."""

from __future__ import annotations

from genie.data_builders.fmnerg import build_fmnerg
from genie.demo import EntityDemo
from genie.demo.entities import FMNERG_CONTEXTS
from genie.eval.fmnerg import evaluate_fmnerg
from genie.labels import FMNERG_TYPES
from genie.tasks.base import register
from genie.tasks.entity_text import EntityTextTask
from genie.tasks.index_format import EntityIndexFormat
from genie.tasks.mentions import article

KEYS = tuple((coarse, fine) for coarse, fines in FMNERG_TYPES.items() for fine in fines)


def words(label: str) -> str:
    return label.replace("_", " ")


class FMNERG(EntityTextTask):
    name = "fmnerg"
    labels = tuple(fine for _, fine in KEYS)
    headline = "fmnerg"
    metric = staticmethod(evaluate_fmnerg)
    builder = staticmethod(build_fmnerg)
    builder_options = {"xml": "the Twitter10000_v2.0/xml folder of boxes, when it is not <source>/xml"}
    grounded = True
    phrases = {(c, f): f"{article(c)} {words(c)} and {article(f)} {words(f)}" for c, f in KEYS}
    index_format = EntityIndexFormat(tuple(FMNERG_TYPES), grounded=True, fine=FMNERG_TYPES)
    demo = EntityDemo("fmnerg", KEYS, FMNERG_CONTEXTS, names_per_key=1)  # a name per fine type



register(FMNERG())
