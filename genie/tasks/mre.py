"""MRE: the relation between two given entities (MNRE), one of 22 relations or None.

The source marks the pair, "[h] Obama [/h] joins [t] Acme [/t]"; the target is the relation in
words, with the head and tail types the path names: "/per/org/member_of" -> "person member of
organization", None -> "none". Entity 0 of a record is the head, entity 1 the tail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from genie.data_builders.mre import build_mre
from genie.demo import RelationDemo
from genie.errors import GenieError
from genie.eval.mre import evaluate_mre, mre_label
from genie.grammar.text import AnyWriter, Slot, TextGrammar, Writer
from genie.labels import (
    JMERE_RELATIONS,
    MNRE_LABELS,
    NO_RELATION,
    RELATION_TYPE_WORDS,
    UNTYPED,
    split_path,
)
from genie.records import Entity, Record, Relation
from genie.tasks.base import Parsed, Target, Task, register
from genie.tasks.entity_text import SEPARATOR


def verbalize(label: str) -> str:
    if label == NO_RELATION:
        return "none"
    head, tail, relation = split_path(label)
    return f"{RELATION_TYPE_WORDS[head]} {relation.replace('_', ' ')} {RELATION_TYPE_WORDS[tail]}"


def pair_types(label: str) -> tuple[str, str]:
    """The head and tail types a relation path names (UNTYPED for None)."""
    return (UNTYPED, UNTYPED) if label == NO_RELATION else split_path(label)[:2]


class MRE(Task):
    name = "mre"
    labels = MNRE_LABELS
    headline = "mre"
    metric = staticmethod(evaluate_mre)
    builder = staticmethod(build_mre)
    grounded = False
    predicts_relations = True
    given_entities = 2  # head and tail
    demo = RelationDemo("mre", joint=False)
    readings = {verbalize(label): label for label in MNRE_LABELS}
    label_words = tuple(r.replace("_", " ") for r in JMERE_RELATIONS)

    def pair(self, record: Record) -> tuple[Entity, Entity]:
        self.check_given(record)
        return record.entities[0], record.entities[1]

    def source_text(self, record: Record) -> str:
        head, tail = self.pair(record)
        markers = defaultdict(list)  # token index -> markers written before it; closing ones first
        for entity, tag in ((head, "h"), (tail, "t")):
            markers[entity.end].append(f"[/{tag}]")
        for entity, tag in ((head, "h"), (tail, "t")):
            markers[entity.start].append(f"[{tag}]")
        words = []
        for i, token in enumerate([*record.tokens, None]):
            words += markers.get(i, [])
            if token is not None:
                words.append(token)
        return " ".join(words)

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        self.pair(record)
        label = mre_label(record)
        if label not in MNRE_LABELS:
            raise GenieError(f"record {record.id!r}: relation {label!r} is not an MNRE label")
        return Target(text=verbalize(label))

    def parse(self, text: str, record: Record) -> Parsed:
        label = self.readings.get(text.strip())
        head_type, tail_type = pair_types(label or NO_RELATION)
        head, tail = self.pair(record)
        entities = [replace(head, type=head_type, boxes=[]), replace(tail, type=tail_type, boxes=[])]
        relations = [Relation(0, 1, label)] if label and label != NO_RELATION else []
        return Parsed(entities=entities, relations=relations, malformed=int(label is None))

    def text_grammar(self, record: Record, writer: Writer = AnyWriter()) -> TextGrammar:
        """Exactly one relation in words: the pair is given, so no word of the tweet is written."""
        return TextGrammar([Slot("relation", self.readings)], SEPARATOR, min_units=1, max_units=1, writer=writer)


register(MRE())
