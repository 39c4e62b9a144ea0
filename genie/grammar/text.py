"""The language of a task's text targets, as an automaton over their UTF-8 bytes: what lets
text decoding (`genie/model/constrained.py`) write only what the task's parser reads whole, as
`Grammar` does for index targets.

A target is units joined by a separator (" [SEP] "); a unit is a series of slots; a slot is one
of a set of strings, each standing for a value: " is a location" for LOC, a mention of the tweet
("Pak", "Pak (2)") for the span the parser resolves it to. Reading is nondeterministic ("Pak" is
a whole mention or the start of "Pak Obama"), so the automaton's state is a set of `State`s.
"""

from __future__ import annotations

import math
from typing import Hashable, NamedTuple, Protocol

LEAD, BETWEEN = -2, -1  # `State.slot` before anything, and after a unit (or inside the separator)
SPACE = ord(" ")


class Writer(Protocol):
    """What a tokenizer can write: whether a word can be written at all (character by character,
    so that every prefix of it can be finished), and the fewest tokens that write some bytes."""

    def writable(self, word: str) -> bool: ...

    def cost(self, data: bytes) -> float: ...


class AnyWriter:
    """A tokenizer with a token for every byte (byte-level BPE's alphabet)."""

    def writable(self, word: str) -> bool:
        return True

    def cost(self, data: bytes) -> float:
        return len(data)


class State(NamedTuple):
    """Where one reading is."""

    units: int  # units finished
    slot: int  # the slot being read, or LEAD / BETWEEN
    read: bytes  # what the slot (or the separator) has read so far
    values: tuple  # (slot name, value) of the unit's finished slots
    memory: Hashable  # what finished units tell later ones (the occurrences of mentions named)


class Slot:
    """One of a fixed set of strings (text -> value). Subclasses read other sets (mentions) or
    depend on the unit's earlier values and the memory.

    `extends` must be exact: a prefix it keeps can always be completed. `rest(read)` is a text
    that completes `read` (None: none does) and `reserve` one that fills the slot when it comes
    later in a unit: short ones, which the decoder's length budget costs in tokens."""

    def __init__(self, name: str, options: dict[str, object]):
        self.name = name
        self.options = {text.encode(): value for text, value in options.items()}
        self.shortest: dict[bytes, bytes] = {}  # every prefix of an option -> the shortest text completing it
        self.next: dict[bytes, set[int]] = {}  # each prefix that goes on -> the bytes that can come next
        for text in sorted(self.options, key=len, reverse=True):
            for k in range(len(text) + 1):
                self.shortest[text[:k]] = text[k:]
            for k in range(len(text)):
                self.next.setdefault(text[:k], set()).add(text[k])
        self.reserve = self.shortest[b""]

    def extends(self, read: bytes, values: tuple, memory: Hashable) -> bool:
        """Some option is longer than `read` and starts with it."""
        return read in self.next

    def following(self, read: bytes, values: tuple, memory: Hashable) -> set[int]:
        """The bytes that can come after `read` in this slot (a superset will do: `step` decides)."""
        return self.next.get(read, set())

    def value(self, read: bytes, values: tuple, memory: Hashable) -> tuple[object, Hashable] | None:
        """The value of `read` as a whole option, and the memory after it (None: not an option here)."""
        return (self.options[read], memory) if read in self.options else None

    def rest(self, read: bytes, values: tuple, memory: Hashable) -> bytes | None:
        return self.shortest.get(read)


class TextGrammar:
    """Units of `slots` joined by `separator`: at least `min_units` (0 or 1) and at most
    `max_units` (None: any) of them. A tokenizer may start the text with a space (byte-level BPE
    does): it is allowed once, first. `writer` costs texts in tokens (bytes by default).
    `unwritable_words`: the tweet's words no mention can hold, because the tokenizer cannot write
    them or the parser would misread them (reported, not hidden)."""

    def __init__(self, slots: list[Slot], separator: str, min_units: int = 0, max_units: int | None = None,
                 memory: Hashable = (), writer: Writer = AnyWriter(), unwritable_words: int = 0):
        if min_units not in (0, 1):
            raise ValueError("min_units must be 0 or 1")
        self.slots, self.separator = slots, separator.encode()
        self.min_units, self.max_units, self.memory = min_units, max_units, memory
        self.cost, self.unwritable_words = writer.cost, unwritable_words
        # Tokens that fill the slots after slot i (the last entry: none).
        costs = [self.cost(slot.reserve) if slot.reserve is not None else math.inf for slot in slots]
        self._after = [sum(costs[i + 1:]) for i in range(len(slots))]
        self._steps: dict[tuple[frozenset, int], frozenset] = {}

    def start(self) -> frozenset[State]:
        return frozenset({State(0, 0, b"", (), self.memory), State(0, LEAD, b"", (), self.memory)})

    def step(self, states: frozenset[State], byte: int) -> frozenset[State]:
        """The states after reading `byte` (empty: `byte` cannot come next)."""
        key = (states, byte)
        if key not in self._steps:
            self._steps[key] = frozenset(after for state in states for after in self._advance(state, byte))
        return self._steps[key]

    def read(self, states: frozenset[State], data: bytes) -> frozenset[State]:
        for byte in data:
            if not states:
                break
            states = self.step(states, byte)
        return states

    def following(self, states: frozenset[State]) -> set[int]:
        """A superset of the bytes `step` accepts after `states`: what a search over a
        vocabulary's byte trie need look at."""
        out: set[int] = set()
        for state in states:
            if state.slot == LEAD:
                out.add(SPACE)
            elif state.slot == BETWEEN:
                out.update(self.separator[len(state.read):len(state.read) + 1])
            else:
                out |= self.slots[state.slot].following(state.read, state.values, state.memory)
        return out

    def accepts(self, states: frozenset[State]) -> bool:
        """The text read so far is a whole target."""
        return any(self._accepts(state) for state in states)

    def to_finish(self, states: frozenset[State]) -> float:
        """A number of tokens that suffices to make the text a whole target (inf: none does)."""
        return min((self._to_finish(state) for state in states), default=math.inf)

    # -- one state ---------------------------------------------------------------------------
    def _advance(self, state: State, byte: int) -> list[State]:
        if state.slot == LEAD:
            return [State(0, 0, b"", (), state.memory)] if byte == SPACE else []
        read = state.read + bytes((byte,))
        if state.slot == BETWEEN:
            if (state.units == self.max_units or not self.separator.startswith(read)
                    or self._unit(state.memory) == math.inf):  # no unit can follow
                return []
            return [State(state.units, 0 if read == self.separator else BETWEEN,
                          b"" if read == self.separator else read, (), state.memory)]
        slot = self.slots[state.slot]
        out = [state._replace(read=read)] if slot.extends(read, state.values, state.memory) else []
        taken = slot.value(read, state.values, state.memory)
        if taken is not None:
            value, memory = taken
            if state.slot + 1 < len(self.slots):
                out.append(State(state.units, state.slot + 1, b"", (*state.values, (slot.name, value)), memory))
            else:
                out.append(State(state.units + 1, BETWEEN, b"", (), memory))
        return out

    def _accepts(self, state: State) -> bool:
        if state.read:
            return False
        if state.slot == BETWEEN:
            return state.units >= self.min_units
        return state.units == 0 and self.min_units == 0 and state.slot in (0, LEAD)

    def _unit(self, memory: Hashable) -> float:
        """Tokens that suffice for a whole unit, given the memory."""
        return self._finish(0, b"", (), memory)

    def _finish(self, slot: int, read: bytes, values: tuple, memory: Hashable) -> float:
        """Tokens that complete slot `slot` from `read`, then the rest of the unit."""
        rest = self.slots[slot].rest(read, values, memory)
        return math.inf if rest is None else self.cost(rest) + self._after[slot]

    def _to_finish(self, state: State) -> float:
        if self._accepts(state):
            return 0
        if state.slot == LEAD:
            return self._unit(state.memory)
        if state.slot == BETWEEN:
            return self.cost(self.separator[len(state.read):]) + self._unit(state.memory)
        return self._finish(state.slot, state.read, state.values, state.memory)
