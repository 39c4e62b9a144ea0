"""TIGER-style text targets for entity tasks: one clause per entity, joined by a separator.

    "Pak is a location, which is in the image [SEP] Obama is a person, which is not in the image"

The grounding slot of an entity in the image is the phrase "which is in the image": the
decoder states of its tokens score the image regions.
"""

from __future__ import annotations

import re

from genie.records import Entity, Record
from genie.tasks.base import Parsed, Target, Task

SEPARATOR = " [SEP] "
IN_IMAGE = "which is in the image"
NOT_IN_IMAGE = "which is not in the image"


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def find_span(tokens: list[str], words: list[str], nth: int) -> tuple[int, int] | None:
    """The `nth` (0-based) occurrence of `words` as a token run in `tokens`, or None."""
    n = len(words)
    seen = 0
    for i in range(len(tokens) - n + 1):
        if tokens[i:i + n] == words:
            if seen == nth:
                return (i, i + n)
            seen += 1
    return None


def occurrence(tokens: list[str], entity: Entity) -> int:
    """How many earlier runs of the entity's tokens precede it: the index the parser needs."""
    words = tokens[entity.start:entity.end]
    return sum(tokens[i:i + len(words)] == words for i in range(entity.start))


class EntityTextFormat:
    """Linearizer and parser for (span, type[, in the image]) entities.

    `verbalizer` maps labels to the words used in the text ("LOC" -> "location"). An entity
    whose tokens also occur earlier in the tweet without being that entity would be
    ambiguous; its clause names the occurrence, e.g. "Trump (2) is a person, ...", so the
    round trip is exact.
    """

    def __init__(self, verbalizer: dict[str, str], grounded: bool):
        self.verbalizer = verbalizer
        self.labels = {words: label for label, words in verbalizer.items()}
        self.grounded = grounded
        types = "|".join(re.escape(w) for w in sorted(self.labels, key=len, reverse=True))
        tail = r", which is (?P<neg>not )?in the image" if grounded else ""
        self.pattern = re.compile(rf"^(?P<text>.+?)(?: \((?P<nth>\d+)\))? is an? (?P<type>{types}){tail}$")

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        order = sorted(range(len(record.entities)), key=lambda k: record.entities[k].span)
        target = Target(text="")
        seen: dict[tuple[str, ...], int] = {}
        for rank, k in enumerate(order):
            entity = record.entities[k]
            words = tuple(record.tokens[entity.start:entity.end])
            nth = occurrence(record.tokens, entity)
            name = " ".join(words) if nth == seen.get(words, 0) else f"{' '.join(words)} ({nth + 1})"
            seen[words] = nth + 1
            label = self.verbalizer[entity.type]
            clause = f"{name} is {article(label)} {label}"
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

    def parse(self, text: str, record: Record) -> Parsed:
        parsed = Parsed()
        seen: dict[tuple[str, ...], int] = {}
        offset = 0
        for part in text.split(SEPARATOR.strip()):
            begin = offset + len(part) - len(part.lstrip())
            offset += len(part) + len(SEPARATOR.strip())
            part = part.strip()
            if not part:
                continue
            match = self.pattern.match(part)
            if match is None:
                parsed.malformed += 1
                continue
            words = match["text"].split()
            nth = int(match["nth"]) - 1 if match["nth"] else seen.get(tuple(words), 0)
            span = find_span(record.tokens, words, nth)
            if span is None:
                parsed.unmatched += 1
                continue
            seen[tuple(words)] = nth + 1
            entity = Entity(start=span[0], end=span[1], text=" ".join(words), type=self.labels[match["type"]])
            if self.grounded and not match["neg"]:
                slot_begin = begin + part.rindex(IN_IMAGE)
                parsed.slots.append((slot_begin, slot_begin + len(IN_IMAGE)))
                parsed.slot_entities.append(len(parsed.entities))
            parsed.entities.append(entity)
        return parsed


class EntityTextTask(Task):
    """A task whose text target is `EntityTextFormat` over its `verbalizer`."""

    verbalizer: dict[str, str] = {}

    def __init__(self) -> None:
        self.text_format = EntityTextFormat(self.verbalizer, grounded=self.grounded)

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        return self.text_format.linearize(record, groundable)

    def parse(self, text: str, record: Record) -> Parsed:
        return self.text_format.parse(text, record)
