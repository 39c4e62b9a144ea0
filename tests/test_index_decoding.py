"""Index decoding as tensors (genie/grammar/tensor.py, `constrained_search`) against the Python
reference it replaced: the grammar walked per hypothesis (`reference_allowed`) and a search that
gathered the encoder side per step (`reference_generate`). The allowed indices are the same on
random prefixes of every task's grammar, and the decoded sequences are the same, greedy and with
beams, with random tiny models and with a stand-in decoder full of tied scores."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from demo_sets import small_demos, untrained_index_model

from genie.grammar.index import NO_REGION, REGION, Field, Grammar, State
from genie.grammar.tensor import tensor_grammar
from genie.model.pointer import constrained_search
from genie.tasks import TASKS

INDEX_TASKS = sorted(name for name, task in TASKS.items() if task.index_format)
TYPES = ("a", "b", "c")
# The distinct label two fields after its span (a marker between), and a label given by it.
LOOSE = Grammar((Field("head"), Field("head_type", TYPES, vocab="type"), Field("tail"),
                 Field("marker", (REGION, NO_REGION), vocab="marker"), Field("tail_type", TYPES, vocab="type"),
                 Field("detail", ("x", "y", "z"), given="tail_type", choices={"a": ("x",), "b": ("y", "z")})),
                distinct=(("head", "head_type"), ("tail", "tail_type")))
# Few units to write (a span, then "a x", "b x" or "b y"), so that walks repeat them and meet
# dead ends ("a" has one detail).
FEW = Grammar((Field("span"), Field("kind", ("a", "b")), Field("detail", ("x", "y"), given="kind",
                                                                   choices={"a": ("x",), "b": ("x", "y")})))
GRAMMARS = {**{name: TASKS[name].index_format.grammar for name in INDEX_TASKS}, "loose": LOOSE, "few": FEW}


# -- the reference: the grammar in Python, per hypothesis ---------------------------------------

def to_finish(grammar: Grammar, state: State) -> int:
    """The fewest indices that end the sequence from `state` (end label included)."""
    if state.done:
        return 0
    if state.field == 0 and state.last < 0:
        return 1
    return len(grammar.fields) - state.field - (1 if state.last >= 0 else 0) + 1


def reference_allowed(grammar: Grammar, state: State, n_words: int, budget: int) -> tuple[list[int], range]:
    """The labels and the words allowed after `state` that still let the sequence end within
    `budget` indices (the next one included); words are < `n_words`."""
    if state.done or budget < 1:
        return [], range(0)

    def fits(after: State | None) -> bool:
        return after is not None and to_finish(grammar, after) <= budget - 1

    labels = [i for i in labels_next(grammar, state) if fits(grammar.advance(state, i))]
    if not grammar.fields[state.field].is_span:
        unwritten = replace(state, written=frozenset())  # the labels but for the no-repeat rule
        if not labels and any(fits(grammar.advance(unwritten, i)) for i in labels_next(grammar, unwritten)):
            labels = [grammar.end]  # a dead end: every label would repeat a unit
        return labels, range(0)
    words = range(state.last + 1, min(state.last + 2, n_words)) if state.last >= 0 else range(state.floor, n_words)
    if len(words) and not fits(grammar.advance(state, grammar.pointer(words[0]))):
        words = range(0)
    return labels, words


def labels_next(grammar: Grammar, state: State) -> list[int]:
    """The label indices that can follow `state` (the end label included)."""
    f = grammar.fields[state.field]
    if not f.is_span:
        return [grammar.label_id(f, lab) for lab in grammar.labels_of(f, state)]
    if state.last < 0:
        return [grammar.end] if state.field == 0 else []
    nxt = grammar.fields[state.field + 1] if state.field + 1 < len(grammar.fields) else None
    return [grammar.label_id(nxt, lab) for lab in grammar.labels_of(nxt, state)] if nxt and not nxt.is_span else []


def reference_search(step, reorder, grammar: Grammar, n_words: list[int], num_beams: int,
                     max_length: int) -> list[list[int]]:
    """`constrained_search` as it was, hypothesis by hypothesis; `step(rows, last)`, `rows`
    being each hypothesis's example."""
    alive = [(b, [], 0.0, State()) for b in range(len(n_words))]  # example, indices, score, state
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in n_words]
    last = None
    for t in range(max_length):
        budget = max_length - t
        logp = step(torch.tensor([h[0] for h in alive]), last).float()
        allowed = torch.zeros_like(logp, dtype=torch.bool)
        for i, (b, _, _, state) in enumerate(alive):
            labels, words = reference_allowed(grammar, state, n_words[b], budget)
            allowed[i, labels] = True
            allowed[i, len(grammar.specials) + words.start:len(grammar.specials) + words.stop] = True
        total = (logp.masked_fill(~allowed, float("-inf")) + torch.tensor([h[2] for h in alive])[:, None])
        values, picks = total.topk(min(2 * num_beams, total.shape[1]), dim=1)
        candidates: dict[int, list[tuple[float, int, int]]] = {}
        for i, (b, *_) in enumerate(alive):
            candidates.setdefault(b, []).extend(
                (v, i, p) for v, p in zip(values[i].tolist(), picks[i].tolist()) if v > float("-inf"))
        next_alive, parents = [], []
        for b, options in candidates.items():
            kept = 0
            for score, parent, index in sorted(options, reverse=True):
                if len(finished[b]) >= num_beams or kept == num_beams:
                    break
                _, prefix, _, state = alive[parent]
                if index == grammar.end:
                    finished[b].append((score / (len(prefix) + 1), prefix + [index]))
                    continue
                next_alive.append((b, prefix + [index], score, grammar.advance(state, index)))
                parents.append(parent)
                kept += 1
        going = [(h, p) for h, p in zip(next_alive, parents) if len(finished[h[0]]) < num_beams]
        if not going:
            break
        reorder(torch.tensor([p for _, p in going]))
        alive = [h for h, _ in going]
        last = torch.tensor([h[1][-1] for h in alive])
    return [max(done)[1] if done else [] for done in finished]


@torch.inference_mode()
def reference_generate(model, batch: dict, grammar: Grammar, num_beams: int, max_length: int) -> list[list[int]]:
    """`GenieModel.generate_indices` as it was: the encoder side gathered for the live rows at
    every step."""
    encoder_states, mask, _, _ = model.encode(batch)
    words = model.words(batch, encoder_states)
    decoder, cache = model.backbone.get_decoder(), None

    def step(rows: torch.Tensor, last: torch.Tensor | None) -> torch.Tensor:
        nonlocal cache
        inputs = model.pointer.start(len(rows)) if last is None else model.pointer.inputs(last[:, None], words[rows])
        out = decoder(inputs_embeds=inputs, encoder_hidden_states=encoder_states[rows],
                      encoder_attention_mask=mask[rows], cache=cache, use_cache=True)
        cache = out.cache
        logits = model.pointer.logits(out.last_hidden_state[:, -1:], words[rows], batch["word_mask"][rows])
        return F.log_softmax(logits[:, 0].float(), -1)

    return reference_search(step, lambda parents: cache.reorder_cache(parents), grammar,
                            batch["word_mask"].sum(1).tolist(), num_beams, max_length)


# -- the allowed indices -------------------------------------------------------------------------

UNITS = 6  # the longest walk: as many indices as this many units take at least


def random_walks(grammar: Grammar, rng: random.Random, walks: int):
    """(n_words, prefix, reference state) along random well-formed walks: short tweets, so that
    two spans of a unit are often the same, and an unordered grammar's units often repeat."""
    for _ in range(walks):
        n_words, state, prefix = rng.randint(1, 4), State(), []
        for _ in range(rng.randint(1, UNITS * len(grammar.fields))):
            yield n_words, list(prefix), state
            labels, words = reference_allowed(grammar, state, n_words, budget=100)
            options = [i for i in labels if i != grammar.end] + [grammar.pointer(w) for w in words]
            if not options:
                break
            prefix.append(rng.choice(options))
            state = grammar.advance(state, prefix[-1])


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_allowed_indices_are_the_reference_ones_on_random_prefixes(name):
    grammar = GRAMMARS[name]
    tensors, n_special, width = tensor_grammar(grammar, torch.device("cpu")), len(grammar.specials), 6
    points = list(random_walks(grammar, random.Random(0), walks=300))
    after = {(): tensors.start(1, UNITS * len(grammar.fields))}  # a walk's prefixes come in order: each one's state is one step on
    for _, prefix, _ in points:
        if prefix:
            after[tuple(prefix)] = tensors.advance(after[tuple(prefix[:-1])], torch.tensor(prefix[-1:]))
    states = torch.cat([after[tuple(prefix)] for _, prefix, _ in points])
    n_words = torch.tensor([n for n, _, _ in points])
    for budget in range(len(grammar.fields) + 3):
        mask = tensors.allowed(states, n_words, budget, width)
        for row, (n, _, state) in zip(mask, points):
            labels, words = reference_allowed(grammar, state, n, budget)
            expected = torch.zeros(n_special + width, dtype=torch.bool)
            expected[labels] = True
            expected[[grammar.pointer(w) for w in words]] = True
            assert torch.equal(row, expected), (state, budget)


def test_random_prefixes_reach_the_distinct_rule_and_dependent_labels():
    """The walks above meet what the tables encode beyond the field: a tail naming the head's
    span (its type then excluded) and fine types under each coarse type."""
    jmere, fmnerg = GRAMMARS["jmere"], GRAMMARS["fmnerg"]
    same_span = 0
    for n_words, _, state in random_walks(jmere, random.Random(0), walks=300):
        if state.field == 2 and state.last >= 0 and dict(state.values)["head"] == (state.first, state.last + 1):
            full = labels_next(jmere, state)
            same_span += len(reference_allowed(jmere, state, n_words, 100)[0]) < len(full)
    coarse = {dict(state.values)["type"] for _, _, state in random_walks(fmnerg, random.Random(0), walks=300)
              if state.field == 3}
    assert same_span > 10 and len(coarse) == len(fmnerg.fields[2].labels)


def test_random_prefixes_reach_the_no_repeat_rule_and_its_dead_ends():
    """In an unordered grammar the walks meet a last label refused because it would repeat a
    unit, and a unit left with none."""
    refused = dead_ends = 0
    for n_words, _, state in random_walks(FEW, random.Random(0), walks=300):
        if state.written and state.field == len(FEW.fields) - 1:
            labels = reference_allowed(FEW, state, n_words, 100)[0]
            refused += len(labels) < len(labels_next(FEW, replace(state, written=frozenset())))
            dead_ends += labels == [FEW.end]
    assert refused > 10 and dead_ends > 3


def test_a_decoder_that_prefers_one_triple_writes_it_once():
    """The same scores at every step would write the same JMERE triple until the length ran out;
    the grammar lets each later unit differ, down to its relation."""
    grammar = GRAMMARS["jmere"]
    scores = torch.linspace(0, -1, len(grammar.specials) + 4).log_softmax(-1)
    scores[grammar.end] = -50.0  # the end label is its very last choice

    def step(last):
        return scores.expand(1 if last is None else len(last), -1)

    for beams in (1, 3):
        sequence = constrained_search(step, lambda parents: None, grammar, torch.tensor([4]), beams, 40)[0]
        units, malformed = grammar.read(sequence)
        written = [tuple(unit.items()) for unit, _ in units]
        assert malformed == 0 and len(written) == 7 and len(set(written)) == len(written), written


# -- the search ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return small_demos(tmp_path_factory.mktemp("demos"), INDEX_TASKS, n_train=60, n_dev=20, n_test=20,
                       feature_dim=16)


@pytest.mark.parametrize("name", ["gmner", "jmere", "fmnerg"])
@pytest.mark.parametrize("backbone", ["tiny-t5", "tiny-bart"])
def test_decoding_gives_the_reference_sequences(demos, name, backbone):
    for seed in range(2):
        task, model, batch, _ = untrained_index_model(demos, name, backbone, seed)
        grammar = task.index_format.grammar
        for beams, budget in ((1, 40), (3, 40), (3, 9), (5, 20)):
            assert (model.generate_indices(batch, grammar, beams, budget)
                    == reference_generate(model, batch, grammar, beams, budget)), (seed, beams, budget)


class TiedScores:
    """A stand-in decoder: log-probabilities that depend on a hypothesis's example and indices so
    far, from integer logits, so that many candidates tie."""

    def __init__(self, examples: int, width: int, seed: int):
        self.table = torch.randint(-2, 3, (97, width), generator=torch.Generator().manual_seed(seed)).float()
        self.history = torch.arange(examples)

    def step(self, last: torch.Tensor | None) -> torch.Tensor:
        if last is not None:
            self.history = (self.history * 31 + last + 1) % 97
        return self.table[self.history].log_softmax(-1)

    def reference_step(self, rows: torch.Tensor, last: torch.Tensor | None) -> torch.Tensor:
        return self.step(last)

    def reorder(self, parents: torch.Tensor) -> None:
        self.history = self.history[parents]


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_search_breaks_ties_as_the_reference(name):
    grammar = GRAMMARS[name]
    n_words = [1, 3, 5, 2, 5]
    for seed in range(3):
        for beams, budget in ((1, 30), (2, 12), (4, 30)):
            ours, theirs = (TiedScores(len(n_words), len(grammar.specials) + 5, seed) for _ in range(2))
            got = constrained_search(ours.step, ours.reorder, grammar, torch.tensor(n_words), beams, budget)
            want = reference_search(theirs.reference_step, theirs.reorder, grammar, n_words, beams, budget)
            assert got == want, (seed, beams, budget)


class SlowerPeers:
    """A `Lockstep` whose other processes search `extra` steps longer than this one."""

    def __init__(self, extra: int):
        self.extra = extra

    def anyone(self, going: bool) -> bool:
        if not going:
            self.extra -= 1
        return going or self.extra >= 0


def test_a_finished_search_keeps_stepping_while_other_processes_search(demos):
    """Under ZeRO-3 every process must run the decoder as often as the others: a finished search
    goes on stepping one cached row, and its results stay those of a search alone."""
    task, model, batch, _ = untrained_index_model(demos, "gmner", "tiny-t5", 0)
    grammar, rows = task.index_format.grammar, []
    model.backbone.get_decoder().register_forward_hook(lambda module, args, kwargs, out: rows.append(
        len(kwargs["inputs_embeds"])), with_kwargs=True)
    encoder_side = ("input_ids", "attention_mask", "word_starts", "word_mask", "region_features", "region_boxes",
                    "region_mask")
    tested = 0
    for example in range(len(batch["input_ids"])):
        one = {key: batch[key][example:example + 1] for key in encoder_side}
        for beams in (1, 3):
            rows.clear()
            alone = model.generate_indices(one, grammar, beams, 40)
            steps = len(rows)
            if steps > 40 - 3:  # no process steps past the budget: no room left to wait in
                continue
            rows.clear()
            assert model.generate_indices(one, grammar, beams, 40, lockstep=SlowerPeers(3)) == alone
            assert len(rows) == steps + 3 and rows[steps:] == [1, 1, 1]
            tested += 1
    assert tested >= 3
