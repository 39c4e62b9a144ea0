"""JMERE: every (head, head type, relation, tail, tail type) triple of a tweet.

    "Obama is a person, member of, Acme is an organization [SEP] ..."

One clause per relation, ordered by head and tail position. An entity recurs in several
triples, so a mention names its occurrence only when it is not the first ("Pak (2)"), and the
round trip is exact.
"""

from __future__ import annotations

import re
from typing import Hashable

from genie.data_builders.jmere import build_jmere
from genie.demo import RelationDemo
from genie.errors import GenieError
from genie.eval.jmere import evaluate_jmere
from genie.grammar.text import AnyWriter, Slot, TextGrammar, Writer
from genie.labels import (
    JMERE_RELATIONS,
    NO_RELATION,
    RELATION_TYPE_WORDS,
    RELATION_TYPES,
)
from genie.records import Entity, Record, Relation
from genie.tasks.base import Parsed, Target, Task, register
from genie.tasks.entity_text import SEPARATOR, clauses, mention_words
from genie.tasks.index_format import TripleIndexFormat
from genie.tasks.mentions import (
    NUMBER_TEXT,
    Mentions,
    MentionSlot,
    article,
    name_pattern,
)

TYPE_PHRASES = {t: f"{article(w)} {w}" for t, w in RELATION_TYPE_WORDS.items()}
RELATION_WORDS = {r: r.replace("_", " ") for r in JMERE_RELATIONS}


def _alternatives(phrases) -> str:
    return "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))


class TailType(Slot):
    """The tail's type, closing the triple: not the head's when the tail names the head's span
    (the parser drops an entity in relation with itself), and none that would write a triple
    already written (the memory: the triples so far), so a prediction is a set.

    Its reserve, what the length budget counts for it in a later unit, is the longest type: some
    type is left for a (head, head type, relation, tail) unless that pair was written with every
    type under that relation already, and only then could the decoder meet a dead end (counted)."""

    def __init__(self, name: str, options: dict[str, str]):
        super().__init__(name, options)
        self.reserve = max(self.options, key=len)

    def _allowed(self, values: tuple, memory: Hashable) -> dict[bytes, object]:
        given = dict(values)
        same = given["tail"] == given["head"]
        return {text: kind for text, kind in self.options.items()
                if not (same and kind == given["head_type"]) and _triple(given, kind) not in memory}

    def extends(self, read: bytes, values: tuple, memory: Hashable) -> bool:
        return any(len(text) > len(read) and text.startswith(read) for text in self._allowed(values, memory))

    def following(self, read: bytes, values: tuple, memory: Hashable) -> set[int]:
        return {text[len(read)] for text in self._allowed(values, memory)
                if len(text) > len(read) and text.startswith(read)}

    def value(self, read: bytes, values: tuple, memory: Hashable) -> tuple[object, Hashable] | None:
        allowed = self._allowed(values, memory)
        if read not in allowed:
            return None
        return allowed[read], memory | {_triple(dict(values), allowed[read])}

    def rest(self, read: bytes, values: tuple, memory: Hashable) -> bytes | None:
        return min((text[len(read):] for text in self._allowed(values, memory) if text.startswith(read)), key=len,
                   default=None)


def _triple(values: dict, tail_type: str) -> tuple:
    return values["head"], values["head_type"], values["relation"], values["tail"], tail_type


class JMERE(Task):
    name = "jmere"
    labels = JMERE_RELATIONS
    headline = "jmere"
    metric = staticmethod(evaluate_jmere)
    builder = staticmethod(build_jmere)
    grounded = False
    predicts_relations = True
    readable_only = ("entity",)  # an unreadable clause names no entity
    index_format = TripleIndexFormat(RELATION_TYPES, JMERE_RELATIONS, skip=NO_RELATION)
    demo = RelationDemo("jmere", joint=True)
    types = {phrase: t for t, phrase in TYPE_PHRASES.items()}
    relations = {words: r for r, words in RELATION_WORDS.items()}
    pattern = re.compile(
        rf"^{name_pattern('head')} is (?P<head_type>{_alternatives(types)}), "
        rf"(?P<relation>{_alternatives(relations)}), "
        rf"{name_pattern('tail')} is (?P<tail_type>{_alternatives(types)})$")

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        ents = record.entities
        for entity in ents:
            if entity.type not in RELATION_TYPES:
                raise GenieError(f"record {record.id!r}: entity type {entity.type!r} is not a JMERE type "
                                 f"({', '.join(RELATION_TYPES)})")
        kept = [r for r in record.relations if r.type != NO_RELATION]
        for relation in kept:
            if relation.type not in RELATION_WORDS:
                raise GenieError(f"record {record.id!r}: relation {relation.type!r} is not a JMERE relation")
        kept.sort(key=lambda r: (ents[r.head].span, ents[r.tail].span, r.type))
        mentions = Mentions(record.tokens, sequential=False)
        written = []
        for r in kept:
            head, tail = ents[r.head], ents[r.tail]
            written.append(f"{mentions.write(head.span)} is {TYPE_PHRASES[head.type]}, {RELATION_WORDS[r.type]}, "
                           f"{mentions.write(tail.span)} is {TYPE_PHRASES[tail.type]}")
        return Target(text=SEPARATOR.join(written))

    def parse(self, text: str, record: Record) -> Parsed:
        parsed = Parsed()
        mentions = Mentions(record.tokens, sequential=False)
        index: dict[tuple[tuple[int, int], str], int] = {}  # (span, type) -> entity index

        def entity(span: tuple[int, int], kind: str) -> int:
            if (span, kind) not in index:
                index[(span, kind)] = len(parsed.entities)
                parsed.entities.append(Entity(span[0], span[1], " ".join(record.tokens[span[0]:span[1]]), kind))
            return index[(span, kind)]

        for _, clause in clauses(text):
            match = self.pattern.match(clause)
            if match is None:
                parsed.malformed += 1
                continue
            head, tail = mentions.read(match, "head"), mentions.read(match, "tail")
            if head is None or tail is None:
                parsed.unmatched += 1
                continue
            head_type, tail_type = self.types[match["head_type"]], self.types[match["tail_type"]]
            if (head, head_type) == (tail, tail_type):  # an entity in relation with itself
                parsed.malformed += 1
                continue
            parsed.relations.append(Relation(entity(head, head_type), entity(tail, tail_type),
                                             self.relations[match["relation"]]))
        return parsed

    def text_grammar(self, record: Record, writer: Writer = AnyWriter()) -> TextGrammar:
        usable, numbering = mention_words(record.tokens, writer), writer.writable(NUMBER_TEXT)
        types = {f" is {phrase}": kind for kind, phrase in TYPE_PHRASES.items()}
        slots = [MentionSlot("head", record.tokens, sequential=False, usable=usable, numbering=numbering),
                 Slot("head_type", types),
                 Slot("relation", {f", {words}, ": r for r, words in RELATION_WORDS.items()}),
                 MentionSlot("tail", record.tokens, sequential=False, usable=usable, numbering=numbering),
                 TailType("tail_type", types)]
        return TextGrammar(slots, SEPARATOR, memory=frozenset(), writer=writer,
                           unwritable_words=usable.count(False))


register(JMERE())
