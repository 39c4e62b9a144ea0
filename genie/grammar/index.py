"""The finite-state reading of index targets (their layout: genie/tasks/index_format.py).

`Grammar` both constrains decoding (only continuations that can still end well-formed within
the length budget are allowed; the decoder applies it as tensors, `genie.grammar.tensor`) and drives
the parser, so whatever the decoder emits parses. It sits below both the tasks (which write and
parse targets with it) and the model (whose pointer head decodes under it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genie.errors import GenieError

END = "</s>"
REGION, NO_REGION = "<region>", "<no region>"


@dataclass(frozen=True)
class Field:
    """One part of a unit: a span of words (`labels` empty) or one of `labels`. `vocab` names
    the special set the labels come from (fields sharing a vocab share indices). With `given`,
    the labels allowed depend on the value of that earlier field: `choices[value]`."""

    name: str
    labels: tuple[str, ...] = ()
    vocab: str = ""
    given: str = ""
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_span(self) -> bool:
        return not self.labels


@dataclass(frozen=True)
class State:
    """Where a prefix is: the field being filled, the first and last word of an open span (or
    -1), the values of the current unit's finished fields (spans as (start, end)), the first
    word a next unit may start at (`Grammar.ordered`) and, in an unordered grammar, the units
    written so far (each its values)."""

    field: int = 0
    first: int = -1
    last: int = -1
    values: tuple[tuple[str, str | tuple[int, int]], ...] = ()
    done: bool = False
    floor: int = 0
    written: frozenset = frozenset()


class Grammar:
    """`distinct`, two (span field, label field) pairs of a unit that must not be equal (the
    head and tail entity of a triple). A prediction is a set, so that an undertrained model
    cannot name "Madrid" six times: with `ordered`, each unit starts at a later word than the
    one before (entities in text order, one per start word), so no span is written twice;
    otherwise the last field refuses a label that would write a unit already written (a triple
    again). A unit left with no label at all (every one written, e.g. all 21 relations of
    one JMERE pair) is a dead end: the decoder is then given the end label (`TensorGrammar`) and
    the parser counts the cut unit malformed."""

    def __init__(self, fields: tuple[Field, ...], distinct: tuple[tuple[str, str], tuple[str, str]] | None = None,
                 ordered: bool = False):
        if not fields or not fields[0].is_span:
            raise ValueError("a unit starts with a span field")
        self.fields, self.distinct, self.ordered = fields, distinct, ordered
        self.specials: list[str] = [END]
        for f in fields:
            for label in f.labels:
                name = self.special_name(f, label)
                if name not in self.specials:
                    self.specials.append(name)
        self.index = {name: i for i, name in enumerate(self.specials)}
        self.end = self.index[END]

    @staticmethod
    def special_name(f: Field, label: str) -> str:
        return label if f.vocab == "marker" else f"{f.vocab or f.name}:{label}"

    def label_id(self, f: Field, label: str) -> int:
        return self.index[self.special_name(f, label)]

    def pointer(self, word: int) -> int:
        return len(self.specials) + word

    def labels_of(self, f: Field, state: State) -> tuple[str, ...]:
        values = dict(state.values)
        labels = f.choices.get(values.get(f.given, ""), ()) if f.given else f.labels
        if self.distinct and f.name == self.distinct[1][1]:
            (span_a, label_a), (span_b, _) = self.distinct
            if span_b in values and values.get(span_a) == values[span_b]:
                labels = tuple(label for label in labels if label != values.get(label_a))
        if state.written and f is self.fields[-1]:
            labels = tuple(label for label in labels if (*state.values, (f.name, label)) not in state.written)
        return labels

    # -- the automaton ---------------------------------------------------------------------
    def advance(self, state: State, index: int, strict: bool = True) -> State | None:
        """The state after `index`, or None when `index` is not allowed here. The parser reads
        with `strict` false: a unit out of order or written before is read (an exact repeat
        then dropped by `Parsed.as_set`, and counted), not counted malformed."""
        if state.done:
            return None
        n_special = len(self.specials)
        f = self.fields[state.field]
        if index == self.end:
            return State(done=True) if state.field == 0 and state.last < 0 else None
        if index >= n_special:  # a pointer
            word = index - n_special
            if not f.is_span or (state.last >= 0 and word != state.last + 1):
                return None
            floor = state.floor
            if state.field == 0 and state.last < 0:  # a unit's first word
                if word < floor and strict:
                    return None
                floor = word + 1 if self.ordered else 0
            return State(state.field, word if state.first < 0 else state.first, word, state.values, floor=floor,
                         written=state.written)
        if f.is_span:  # a label closes the open span, then fills the next field
            if state.last < 0 or state.field + 1 == len(self.fields):
                return None
            state = State(state.field + 1, values=state.values + ((f.name, (state.first, state.last + 1)),),
                          floor=state.floor, written=state.written)
            f = self.fields[state.field]
            if f.is_span:
                return None
        name = self.specials[index]
        label = next((lab for lab in self.labels_of(f, state) if self.special_name(f, lab) == name), None)
        if label is None:
            return None
        values = state.values + ((f.name, label),)
        if state.field + 1 == len(self.fields):
            remember = strict and not self.ordered
            return State(floor=state.floor, written=state.written | {values} if remember else state.written)
        return State(state.field + 1, values=values, floor=state.floor, written=state.written)

    # -- units <-> indices -----------------------------------------------------------------
    def write(self, units: list[dict]) -> tuple[list[int], list[int]]:
        """Indices of `units` (field name -> span or label) and the position of each unit's
        in-the-image marker (-1 when it has none or is not in the image)."""
        indices, markers = [], []
        floor = 0
        for unit in units:
            start = unit[self.fields[0].name][0]
            if start < floor:
                raise GenieError(f"two entities start at word {start} (or out of text order): index targets "
                                 f"name one entity per start word, in text order; use target_format=text")
            floor = start + 1 if self.ordered else 0
            marker = -1
            for f in self.fields:
                value = unit[f.name]
                if f.is_span:
                    indices.extend(self.pointer(w) for w in range(*value))
                    continue
                if value not in self.labels_of(f, State(values=tuple(unit.items()))):
                    raise GenieError(f"{f.name} {value!r} is not one of this task's labels")
                if value == REGION:
                    marker = len(indices)
                indices.append(self.label_id(f, value))
            markers.append(marker)
        indices.append(self.end)
        return indices, markers

    def read(self, indices: list[int]) -> tuple[list[tuple[dict, int]], int]:
        """(unit, marker position) for every complete unit, and how many parts were malformed:
        an index that does not fit drops the unit it breaks, and the reading restarts at the
        next index that can begin a unit (a run of such indices counts once)."""
        units, malformed, broken = [], 0, False
        state, unit, marker = State(), {}, -1
        for pos, index in enumerate(indices):
            after = self.advance(state, index, strict=False)
            if after is None:
                malformed += not broken
                broken = True
                state, unit, marker = State(), {}, -1
                after = self.advance(state, index, strict=False)
                if after is None:
                    continue
            broken = False
            if after.done:
                break
            self._collect(state, after, index, pos, unit)
            if index == self.index.get(REGION):
                marker = pos
            if after.field == 0 and after.last < 0:
                units.append((unit, marker))
                unit, marker = {}, -1
            state = after
        else:
            malformed += bool(state.field or state.last >= 0)  # cut off mid-unit
        return units, malformed

    def _collect(self, before: State, after: State, index: int, pos: int, unit: dict) -> None:
        n_special = len(self.specials)
        if index >= n_special:
            name = self.fields[after.field].name
            start = unit[name][0] if before.last >= 0 else index - n_special
            unit[name] = (start, index - n_special + 1)
            return
        f = self.fields[after.field - 1] if after.field else self.fields[-1]
        unit[f.name] = self.specials[index] if f.vocab == "marker" else self.specials[index].split(":", 1)[1]
