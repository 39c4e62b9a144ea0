"""TIGER-style text targets for entity tasks: one clause per entity, joined by a separator.

    "Pak is a location, which is in the image [SEP] Obama is a person, which is not in the image"
    "Obama is a person and a politician, which is in the image"           (FMNERG: coarse + fine)

The grounding slot of an entity in the image is the phrase "which is in the image": the
decoder states of its tokens score the image regions.
"""

from __future__ import annotations

import re

from genie.errors import GenieError
from genie.grammar.text import AnyWriter, Slot, TextGrammar, Writer
from genie.records import Entity, Record
from genie.tasks.base import Parsed, Target, Task
from genie.tasks.mentions import (
    NUMBER_TEXT,
    Mentions,
    MentionSlot,
    article,
    name_pattern,
)

SEPARATOR = " [SEP] "
IN_IMAGE = "which is in the image"
NOT_IN_IMAGE = "which is not in the image"

TypeKey = tuple[str, str | None]  # (type, fine type or None)


def type_phrases(words: dict[str, str]) -> dict[TypeKey, str]:
    """{"LOC": "location"} -> {("LOC", None): "a location"}."""
    return {(label, None): f"{article(w)} {w}" for label, w in words.items()}


def clauses(text: str) -> list[tuple[int, str]]:
    """The non-empty clauses of a generated text, each with its char offset in `text`."""
    out, offset = [], 0
    for part in text.split(SEPARATOR.strip()):
        stripped = part.strip()
        if stripped:
            out.append((offset + len(part) - len(part.lstrip()), stripped))
        offset += len(part) + len(SEPARATOR.strip())
    return out


def mention_words(tokens: list[str], writer: Writer) -> list[bool]:
    """Which words a generated mention can hold: the tokenizer can write them, and they do not
    contain the separator (the parser would split the clause there)."""
    return [writer.writable(word) and SEPARATOR.strip() not in word for word in tokens]


class EntityTextFormat:
    """Linearizer and parser for (span, type[, in the image]) entities.

    `phrases` maps a type key to the words that follow "is": ("LOC", None) -> "a location",
    ("person", "politician") -> "a person and a politician".
    """

    def __init__(self, phrases: dict[TypeKey, str], grounded: bool):
        self.phrases = phrases
        self.keys = {phrase: key for key, phrase in phrases.items()}
        self.grounded = grounded
        types = "|".join(re.escape(p) for p in sorted(self.keys, key=len, reverse=True))
        tail = r", which is (?P<neg>not )?in the image" if grounded else ""
        self.pattern = re.compile(rf"^{name_pattern('text')} is (?P<type>{types}){tail}$")

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        order = sorted(range(len(record.entities)), key=lambda k: record.entities[k].span)
        target = Target(text="")
        mentions = Mentions(record.tokens, sequential=True)
        for rank, k in enumerate(order):
            entity = record.entities[k]
            clause = f"{mentions.write(entity.span)} is {self._phrase(record, entity)}"
            if rank:
                target.text += SEPARATOR
            if self.grounded:
                in_image = entity.groundable if groundable is None else groundable[k]
                clause += ", "
                if in_image:
                    begin = len(target.text) + len(clause)
                    target.slots.append((begin, begin + len(IN_IMAGE)))
                    target.slot_entities.append(k)
                clause += IN_IMAGE if in_image else NOT_IN_IMAGE
            target.text += clause
        return target

    def _phrase(self, record: Record, entity: Entity) -> str:
        key = (entity.type, entity.fine_type)
        if key not in self.phrases:
            label = entity.type if entity.fine_type is None else f"{entity.type}/{entity.fine_type}"
            known = sorted(k if f is None else f"{k}/{f}" for k, f in self.phrases)
            raise GenieError(f"record {record.id!r}: entity type {label!r} is not one of this task's types "
                             f"({', '.join(known[:12])}{', ...' if len(known) > 12 else ''})")
        return self.phrases[key]

    def grammar(self, record: Record, writer: Writer) -> TextGrammar:
        """Every target this format can write for `record` that `parse` reads whole."""
        usable = mention_words(record.tokens, writer)
        slots = [MentionSlot("mention", record.tokens, sequential=True, usable=usable,
                             numbering=writer.writable(NUMBER_TEXT)),
                 Slot("type", {f" is {phrase}": key for key, phrase in self.phrases.items()})]
        if self.grounded:
            slots.append(Slot("image", {f", {IN_IMAGE}": True, f", {NOT_IN_IMAGE}": False}))
        return TextGrammar(slots, SEPARATOR, writer=writer, unwritable_words=usable.count(False))

    def parse(self, text: str, record: Record) -> Parsed:
        parsed = Parsed()
        mentions = Mentions(record.tokens, sequential=True)
        for begin, part in clauses(text):
            match = self.pattern.match(part)
            if match is None:
                parsed.malformed += 1
                continue
            span = mentions.read(match, "text")
            if span is None:
                parsed.unmatched += 1
                continue
            kind, fine = self.keys[match["type"]]
            entity = Entity(span[0], span[1], " ".join(record.tokens[span[0]:span[1]]), kind, fine_type=fine)
            if self.grounded and not match["neg"]:
                slot_begin = begin + part.rindex(IN_IMAGE)
                parsed.slots.append((slot_begin, slot_begin + len(IN_IMAGE)))
                parsed.slot_entities.append(len(parsed.entities))
            parsed.entities.append(entity)
        return parsed


class EntityTextTask(Task):
    """A task whose text target is `EntityTextFormat` over its `phrases`."""

    phrases: dict[TypeKey, str] = {}

    def __init__(self) -> None:
        self.text_format = EntityTextFormat(self.phrases, grounded=self.grounded)

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        return self.text_format.linearize(record, groundable)

    def parse(self, text: str, record: Record) -> Parsed:
        return self.text_format.parse(text, record)

    def text_grammar(self, record: Record, writer: Writer = AnyWriter()) -> TextGrammar:
        return self.text_format.grammar(record, writer)
