"""The pointer head and grammar-constrained search for index targets (H-Index / BARTNER style).

The decoder reads, at each step, a special label's embedding or the vector of the word pointed
at (the mean of the word's first sub-token embedding and its encoder state); its state scores
the special labels and the source words' vectors, so an index can only name a word of the input.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from genie.grammar.index import Grammar
from genie.grammar.tensor import tensor_grammar
from genie.training.distributed import Lockstep


class PointerHead(nn.Module):
    """Embeddings of the special labels, plus one for the decoder start."""

    def __init__(self, d_model: int, num_labels: int, init_std: float):
        super().__init__()
        self.num_labels = num_labels
        # The backbone's token embedding scale at initialisation, saved with the head: read
        # again from trained embeddings it would differ, and so would every word vector.
        self.register_buffer("scale", torch.tensor(float(init_std)))
        self.labels = nn.Embedding(num_labels + 1, d_model)
        nn.init.normal_(self.labels.weight, std=init_std)

    def positions(self, words: torch.Tensor) -> torch.Tensor:
        """Sinusoids of the word index, added to the word vectors: two occurrences of one word
        would otherwise look alike to a pointer (T5's encoder has no absolute positions), and
        the second "Pak" in "Pak ... Pak" could not be named."""
        n, d = words.shape[1], words.shape[2]
        index = torch.arange(n, device=words.device, dtype=torch.float32)[:, None]
        rates = torch.exp(torch.arange(0, d, 2, device=words.device, dtype=torch.float32) * (-math.log(1e4) / d))
        table = torch.zeros(n, d, device=words.device)
        table[:, 0::2], table[:, 1::2] = torch.sin(index * rates), torch.cos(index * rates)[:, :d // 2]
        return words + self.scale * table.to(words.dtype)

    # The label embeddings are read through `self.labels(...)` only, never `.weight`: under ZeRO-3
    # a weight is whole only inside its module's forward call.

    def start(self, rows: int) -> torch.Tensor:
        return self.labels(torch.full((rows, 1), self.num_labels, device=self.scale.device))

    def inputs(self, indices: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """Decoder inputs (B, T, d) for indices (B, T); `words` (B, W, d)."""
        is_word = indices >= self.num_labels
        labels = self.labels(indices.clamp(max=self.num_labels - 1))
        pointed = (indices - self.num_labels).clamp(min=0)
        pointed = words.gather(1, pointed[..., None].expand(-1, -1, words.shape[-1]))
        return torch.where(is_word[..., None], pointed, labels)

    def logits(self, states: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, labels + W) scores; words past each tweet's end are -inf (never chosen)."""
        labels = states @ self.labels(torch.arange(self.num_labels, device=states.device)).T
        pointers = torch.einsum("btd,bwd->btw", states, words).masked_fill(~word_mask[:, None, :], float("-inf"))
        return torch.cat([labels, pointers], -1) / states.shape[-1] ** 0.5


Step = Callable[[torch.Tensor | None], torch.Tensor]


def constrained_search(step: Step, reorder: Callable[[torch.Tensor], None], grammar: Grammar,
                       n_words: torch.Tensor, num_beams: int, max_length: int,
                       lockstep: Lockstep | None = None) -> list[list[int]]:
    """Beam search (greedy when `num_beams` is 1) over index sequences the grammar allows.

    `step(last)` gives log-probabilities (N, V) for the N live hypotheses, `last` being their
    last index (None at the start, one hypothesis per example); `reorder(parents)` makes row i
    of whatever the step keeps per hypothesis (the decoder cache, the encoder states) what row
    `parents[i]` was, and is only called when the hypotheses change. A hypothesis is only
    extended with indices after which it can still end within `max_length`, so every result
    ends with the end label and parses into whole units. Scores are length-normalised
    log-probabilities; an example stops once it has `num_beams` finished hypotheses.

    The live hypotheses are rows grouped by example, and a step is a few tensor operations over
    all of them: only finished hypotheses are read out in Python.

    With a `lockstep` (processes sharing ZeRO-3 weights), a process whose search is over goes on
    stepping one finished hypothesis, its scores dropped, until every process's search is over:
    the same layers run on every process (a cached step skips what a first one computes)."""
    grammar_tensors = tensor_grammar(grammar, n_words.device)
    examples, n_special = len(n_words), len(grammar.specials)
    example = torch.arange(examples, device=n_words.device)  # of each hypothesis
    slot = torch.zeros_like(example)  # its rank among its example's hypotheses
    states, scores = grammar_tensors.start(examples, max_length), torch.zeros(examples, device=n_words.device)
    prefixes = example.new_zeros(examples, 0)
    counts = torch.zeros_like(example)  # finished hypotheses per example
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(examples)]
    last, searching = None, True
    for t in range(max_length):
        if not searching:
            step(last)
        else:
            logp = step(last).float()
            allowed = grammar_tensors.allowed(states, n_words[example], max_length - t, logp.shape[1] - n_special)
            total = logp.masked_fill(~allowed, float("-inf")) + scores[:, None]
            values, picks = total.topk(min(2 * num_beams, total.shape[1]), dim=1)
            ranked, parent, index = _ranked(values, picks, example * num_beams + slot, examples, num_beams)
            ending, going, rank, counts = _taken(ranked, index == grammar.end, counts, num_beams)
            for b, j in ending.nonzero().tolist():
                finished[b].append((ranked[b, j].item() / (t + 1), prefixes[parent[b, j]].tolist() + [grammar.end]))
            searching = bool(going.any())
        if not (lockstep.anyone(searching) if lockstep else searching):
            break
        if not searching:  # one row of the cache stepped on (an end index fed to it), its scores dropped
            last = torch.full((1,), grammar.end, device=n_words.device)
            reorder(last.new_zeros(1))
        else:
            parents, example, slot = parent[going], going.nonzero()[:, 0], rank[going]
            scores, last = ranked[going], index[going]
            if len(parents) != len(states) or not torch.equal(parents,
                                                              torch.arange(len(states), device=parents.device)):
                reorder(parents)
            states = grammar_tensors.advance(states[parents], last)
            prefixes = torch.cat([prefixes[parents], last[:, None]], 1)
    return [max(done)[1] if done else [] for done in finished]


def _ranked(values: torch.Tensor, picks: torch.Tensor, rows: torch.Tensor, examples: int,
            num_beams: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each example's candidates (examples, num_beams * k) in the order the search takes them:
    by score, ties by hypothesis then index, the later first; their score (-inf: none), parent
    hypothesis and index. `rows`: each hypothesis's row of an (examples * num_beams) grid."""
    k, width = values.shape[1], picks.max() + 1

    def grid(per_hypothesis: torch.Tensor, empty: float) -> torch.Tensor:
        return (per_hypothesis.new_full((examples * num_beams, k), empty)
                .index_copy_(0, rows, per_hypothesis).view(examples, -1))

    hypothesis = torch.arange(len(values), device=values.device)[:, None]
    by_tie = grid(hypothesis * width + picks, -1).sort(dim=1, descending=True)
    ranked, by_score = grid(values, float("-inf")).gather(1, by_tie.indices).sort(dim=1, descending=True, stable=True)
    candidates = by_tie.values.gather(1, by_score)
    return ranked, candidates // width, candidates % width


def _taken(ranked: torch.Tensor, is_end: torch.Tensor, counts: torch.Tensor,
           num_beams: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the search does with each example's ranked candidates, taken in order until the
    example has `num_beams` finished hypotheses or `num_beams` going on: those that end a
    hypothesis, those that go on (none when the example is then finished) and the rank of each
    among those going on; and the finished hypotheses per example after the step."""
    valid = ranked > float("-inf")
    ends, goes = valid & is_end, valid & ~is_end
    ends_before, goes_before = ends.cumsum(1) - ends.long(), goes.cumsum(1) - goes.long()
    taken = (counts[:, None] + ends_before < num_beams) & (goes_before < num_beams)
    ending = ends & taken
    counts = counts + ending.sum(1)
    return ending, goes & taken & (counts < num_beams)[:, None], goes_before, counts
