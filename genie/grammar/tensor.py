"""`Grammar` as tensors, for decoding: the allowed indices of every live hypothesis in a few
tensor operations per step. Walking the grammar in Python, hypothesis by hypothesis, took a
quarter of a tiny model's greedy decoding time, and more with beams.

A hypothesis's state is a row of integers (the columns below): the field being filled, the first
and last word of its open span (-1: none), an id of the unit's label values that later fields
depend on (`Field.given`, the label of the first `distinct` pair) and the first word a next unit
may start at (`Grammar.ordered`; 0 otherwise); then, where a rule reads it, the unit so far: a
column per label field (its index) and two per span field (its bounds; an open span kept up to
date), -1 until written; then, in an unordered grammar, the units written (as many as the
length allows), in the same layout. Whether a label fits, and the next values id after it, are looked up in tables
built once per grammar and device from the grammar's own `labels_of`; so is whether the rest
of a unit still fits the length budget, per budget up to the longest unit. What the tables
cannot hold, the two `distinct` spans being equal and a last label that would repeat a unit,
is compared on the unit's columns.
"""

from __future__ import annotations

import functools
import itertools

import torch

from genie.grammar.index import Grammar, State

# A state's first columns: field, first, last, values id, floor; the unit's follow.
EMPTY = (0, -1, -1, 0, 0)
UNIT = len(EMPTY)


@functools.cache
def tensor_grammar(grammar: Grammar, device: torch.device) -> TensorGrammar:
    """`grammar`'s tables on `device`, built once (a task's grammar lives as long as the task)."""
    return TensorGrammar(grammar, device)


class TensorGrammar:
    """A grammar's tables on one device, and `allowed` / `advance` over a batch of states."""

    def __init__(self, grammar: Grammar, device: torch.device):
        self.grammar, self.device = grammar, device
        fields = grammar.fields
        self.n_fields, self.n_special = len(fields), len(grammar.specials)
        names = {f.name: k for k, f in enumerate(fields)}
        self.pairs = pairs = grammar.distinct or ()
        referred = sorted({names[f.given] for f in fields if f.given} | {names[label] for _, label in pairs[:1]})
        if any(fields[k].is_span for k in referred):
            raise ValueError("`given` and `distinct` labels name label fields")
        self.referred = referred
        self.combos = list(itertools.product(*((None, *fields[k].labels) for k in referred)))
        self.combo_id = {combo: i for i, combo in enumerate(self.combos)}
        # Each field's first column in a unit's layout (a span takes two).
        self.offset = list(itertools.accumulate((2 if f.is_span else 1 for f in fields), initial=0))
        self.unit_width = self.offset[-1]
        self.distinct_columns = [UNIT + self.offset[names[span]] for span, _ in pairs]
        self.remembers = not grammar.ordered
        self.tracks_unit = bool(pairs) or self.remembers  # else nothing reads the unit's columns
        # A budget past the longest unit (every field, then the end label) allows what it does.
        self.longest = self.n_fields + 1
        self.labels = torch.stack([self._label_table(budget) for budget in range(self.longest + 1)])
        self.word_fits = torch.tensor([[f.is_span and self.n_fields - k < budget for k, f in enumerate(fields)]
                                       for budget in range(self.longest + 1)], device=device)
        self.next_values = self._next_values()

    # -- tables ----------------------------------------------------------------------------
    def _label_table(self, budget: int) -> torch.Tensor:
        """(fields x span open x values ids x distinct spans equal, specials): the labels allowed."""
        table = torch.zeros(self.n_fields, 2, len(self.combos), 2, self.n_special, dtype=torch.bool)
        for k, opened, (v, combo), same in itertools.product(range(self.n_fields), (0, 1), enumerate(self.combos),
                                                              (0, 1)):
            for index in self._labels(k, bool(opened), combo, bool(same), budget):
                table[k, opened, v, same, index] = True
        return table.flatten(0, 3).to(self.device)

    def _labels(self, k: int, opened: bool, combo: tuple, same: bool, budget: int) -> list[int]:
        """The labels allowed at field `k` (after its open span when `opened`), within `budget`."""
        fields, grammar = self.grammar.fields, self.grammar
        if k == 0 and not opened:
            return [grammar.end] if budget >= 1 else []
        if fields[k].is_span != opened:  # a span field takes words until one is open; no label field is open
            return []
        filled = k + opened  # the label field a label fills: this one, or the one after the open span
        if filled == len(fields) or fields[filled].is_span:
            return []
        if self.n_fields - filled >= budget:  # the unit's rest after the label, and the end label
            return []
        f = fields[filled]
        return [grammar.label_id(f, label) for label in grammar.labels_of(f, self._state(combo, same))]

    def _state(self, combo: tuple, same: bool) -> State:
        """A `State` with the values a values id stands for (and equal `distinct` spans if `same`)."""
        values = tuple((self.grammar.fields[k].name, label) for k, label in zip(self.referred, combo) if label)
        if same:
            values += tuple((span, (0, 1)) for span, _ in self.pairs)
        return State(values=values)

    def _next_values(self) -> torch.Tensor:
        """(fields, values ids, specials): the values id after a label fills the field; 0 after
        the last field (a new unit)."""
        fields, grammar = self.grammar.fields, self.grammar
        table = torch.zeros(self.n_fields, len(self.combos), self.n_special, dtype=torch.long)
        for k, f in enumerate(fields[:-1]):
            for (v, combo), label in itertools.product(enumerate(self.combos), f.labels):
                after = tuple(label if r == k else c for r, c in zip(self.referred, combo))
                table[k, v, grammar.label_id(f, label)] = self.combo_id[after]
        return table.to(self.device)

    # -- decoding --------------------------------------------------------------------------
    def start(self, rows: int, max_length: int) -> torch.Tensor:
        """The states of `rows` empty sequences of at most `max_length` indices (room for every
        unit they can write: each takes an index per field at least)."""
        units = self.tracks_unit + (max_length // self.n_fields if self.remembers else 0)
        empty = torch.tensor(EMPTY, device=self.device)
        return torch.cat([empty, empty.new_full((units * self.unit_width,), -1)]).repeat(rows, 1)

    def allowed(self, states: torch.Tensor, n_words: torch.Tensor, budget: int, width: int) -> torch.Tensor:
        """(rows, specials + width) bool: the indices each state may take next so that its
        sequence can still end within `budget` indices (the next one included). Words are a
        range: from `last + 1` (the floor with no open span) to `n_words`, or only that one word when a
        span is open (spans are consecutive words); none in a label field."""
        budget = max(0, min(budget, self.longest))
        field, _, last, values, floor = states[:, :UNIT].unbind(1)
        opened = last >= 0
        key = ((field * 2 + opened) * len(self.combos) + values) * 2
        if self.pairs:
            a, b = (states[:, column:column + 2] for column in self.distinct_columns)
            key = key + ((a[:, 0] >= 0) & (a == b).all(1))
        labels = self.labels[budget].index_select(0, key)
        if self.remembers:
            fresh = labels & ~self._repeating(states)
            fresh[:, self.grammar.end] |= labels.any(1) & ~fresh.any(1)  # a dead end (`Grammar`) ends the sequence
            labels = fresh
        start = torch.where(opened, last + 1, floor)
        stop = torch.where(opened, start + 1, n_words).minimum(n_words) * self.word_fits[budget].index_select(0, field)
        position = torch.arange(width, device=self.device)
        words = (position >= start[:, None]) & (position < stop[:, None])
        return torch.cat([labels, words], 1)

    def _repeating(self, states: torch.Tensor) -> torch.Tensor:
        """(rows, specials): the last-field labels that would complete a unit already written: a
        written unit equal to this one in every column but the last names them. A unit not at
        its last field matches none (a written unit has no -1)."""
        units = states[:, UNIT:].view(len(states), -1, self.unit_width)
        unit, written = units[:, :1], units[:, 1:]
        same = (written[..., :-1] == unit[..., :-1]).all(2)
        label = written[..., -1].clamp(min=0)
        return torch.zeros(len(states), self.n_special, dtype=torch.long, device=self.device).scatter_add_(
            1, label, same.long()) > 0

    def advance(self, states: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The states after `indices`, each one allowed (never the end label)."""
        field, first, last, values, floor = states[:, :UNIT].unbind(1)
        is_word, word = indices >= self.n_special, indices - self.n_special
        opened = last >= 0
        if self.grammar.ordered:  # a unit's first word raises the floor past it
            floor = torch.where(is_word & ~opened & (field == 0), word + 1, floor)
        filled = field + opened  # the field a label fills
        values_after = self.next_values[filled % self.n_fields, values, indices.clamp(max=self.n_special - 1)]
        first = torch.where(is_word, torch.where(opened, first, word), -1)
        last = torch.where(is_word, word, -1)
        after = torch.stack([torch.where(is_word, field, (filled + 1) % self.n_fields), first, last,
                             torch.where(is_word, values, values_after), floor], 1)
        if not self.tracks_unit:
            return after
        return torch.cat([after, self._units_after(states, is_word, field, filled, first, last, indices)], 1)

    def _units_after(self, states: torch.Tensor, is_word: torch.Tensor, field: torch.Tensor, filled: torch.Tensor,
                     first: torch.Tensor, last: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The unit's columns after an index: a word sets its span's bounds, a label its column;
        the last label moves the whole unit to the written ones (if remembered) and clears it."""
        units = states[:, UNIT:].view(len(states), -1, self.unit_width).clone()
        column = torch.tensor(self.offset[:-1], device=self.device)[torch.where(is_word, field, filled % self.n_fields)]
        words, labels = is_word.nonzero()[:, 0], (~is_word).nonzero()[:, 0]
        units[words, 0, column[words]] = first[words]
        units[words, 0, column[words] + 1] = last[words] + 1
        units[labels, 0, column[labels]] = indices[labels]
        complete = (~is_word & (filled + 1 == self.n_fields)).nonzero()[:, 0]
        if self.remembers and len(complete):
            count = (units[complete, 1:, 0] >= 0).sum(1)
            units[complete, 1 + count] = units[complete, 0]
        units[complete, 0] = -1
        return units.flatten(1)
