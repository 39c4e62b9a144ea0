"""H-Index-style index targets (REFERENCE section 3): special labels and pointers to words.

A target is a list of indices. Index i < len(specials) is a special label (end of sequence, the
in / not in the image markers, a type, a relation); index len(specials) + w points at source
word w. A sequence is units followed by the end label; a unit is a fixed series of fields, a
span field being one or more consecutive word pointers and a label field one special:

    GMNER   "Obama visits Pak"  ->  0 <region> PER  2 <no region> LOC  </s>   (0, 2: word pointers)
    JMERE   head words, head type, tail words, tail type, relation

`genie.grammar.index.Grammar` reads that layout.
"""

from __future__ import annotations

from genie.errors import GenieError
from genie.grammar.index import NO_REGION, REGION, Field, Grammar
from genie.records import Entity, Record, Relation
from genie.tasks.base import Parsed, Target


def marker_field() -> Field:
    return Field("marker", (REGION, NO_REGION), vocab="marker")


class EntityIndexFormat:
    """Entities in text order: span, [marker], type, [fine type]."""

    def __init__(self, types: tuple[str, ...], grounded: bool, fine: dict[str, tuple[str, ...]] | None = None):
        fields = [Field("span")]
        if grounded:
            fields.append(marker_field())
        fields.append(Field("type", types))
        if fine:
            fields.append(Field("fine", tuple(dict.fromkeys(f for fs in fine.values() for f in fs)),
                                given="type", choices=fine))
        self.grammar = Grammar(tuple(fields), ordered=True)
        self.grounded, self.fine = grounded, bool(fine)

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        order = sorted(range(len(record.entities)), key=lambda k: record.entities[k].span)
        units = []
        for k in order:
            e = record.entities[k]
            unit = {"span": e.span, "type": e.type, "fine": e.fine_type}
            if self.grounded:
                unit["marker"] = REGION if (e.groundable if groundable is None else groundable[k]) else NO_REGION
            units.append(unit)
        indices, markers = _write(self.grammar, record, units)
        slots = [(m, m + 1) for m in markers if m >= 0]
        return Target(text="", indices=indices, slots=slots,
                      slot_entities=[k for k, m in zip(order, markers) if m >= 0])

    def parse(self, indices: list[int], record: Record) -> Parsed:
        units, malformed = self.grammar.read(indices)
        parsed = Parsed(malformed=malformed)
        for unit, marker in units:
            start, end = unit["span"]
            if end > len(record.tokens):
                parsed.unmatched += 1
                continue
            if marker >= 0:
                parsed.slots.append((marker, marker + 1))
                parsed.slot_entities.append(len(parsed.entities))
            parsed.entities.append(Entity(start, end, " ".join(record.tokens[start:end]), unit["type"],
                                          fine_type=unit.get("fine")))
        return parsed


class TripleIndexFormat:
    """Relations ordered by head and tail: head span, head type, tail span, tail type, relation."""

    def __init__(self, types: tuple[str, ...], relations: tuple[str, ...], skip: str):
        self.grammar = Grammar((Field("head"), Field("head_type", types, vocab="type"), Field("tail"),
                                Field("tail_type", types, vocab="type"), Field("relation", relations)),
                               distinct=(("head", "head_type"), ("tail", "tail_type")))
        self.skip = skip  # the no-relation label, never written

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        ents = record.entities
        kept = sorted((r for r in record.relations if r.type != self.skip),
                      key=lambda r: (ents[r.head].span, ents[r.tail].span, r.type))
        units = [{"head": ents[r.head].span, "head_type": ents[r.head].type, "tail": ents[r.tail].span,
                  "tail_type": ents[r.tail].type, "relation": r.type} for r in kept]
        indices, _ = _write(self.grammar, record, units)
        return Target(text="", indices=indices)

    def parse(self, indices: list[int], record: Record) -> Parsed:
        units, malformed = self.grammar.read(indices)
        parsed = Parsed(malformed=malformed)
        index: dict[tuple[tuple[int, int], str], int] = {}

        def entity(span: tuple[int, int], kind: str) -> int:
            if (span, kind) not in index:
                index[(span, kind)] = len(parsed.entities)
                parsed.entities.append(Entity(span[0], span[1], " ".join(record.tokens[span[0]:span[1]]), kind))
            return index[(span, kind)]

        for unit, _ in units:
            head, tail = (unit["head"], unit["head_type"]), (unit["tail"], unit["tail_type"])
            if max(head[0][1], tail[0][1]) > len(record.tokens):
                parsed.unmatched += 1
            elif head == tail:  # an entity in relation with itself
                parsed.malformed += 1
            else:
                parsed.relations.append(Relation(entity(*head), entity(*tail), unit["relation"]))
        return parsed


def _write(grammar: Grammar, record: Record, units: list[dict]) -> tuple[list[int], list[int]]:
    try:
        return grammar.write(units)
    except GenieError as exc:
        raise GenieError(f"record {record.id!r}: {exc.args[0]}") from None
