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

from genie.index_grammar import Grammar, State


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

    def start(self, rows: int) -> torch.Tensor:
        return self.labels.weight[self.num_labels].expand(rows, 1, -1)

    def inputs(self, indices: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """Decoder inputs (B, T, d) for indices (B, T); `words` (B, W, d)."""
        is_word = indices >= self.num_labels
        labels = self.labels(indices.clamp(max=self.num_labels - 1))
        pointed = (indices - self.num_labels).clamp(min=0)
        pointed = words.gather(1, pointed[..., None].expand(-1, -1, words.shape[-1]))
        return torch.where(is_word[..., None], pointed, labels)

    def logits(self, states: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, labels + W) scores; words past each tweet's end are -inf (never chosen)."""
        labels = states @ self.labels.weight[:self.num_labels].T
        pointers = torch.einsum("btd,bwd->btw", states, words).masked_fill(~word_mask[:, None, :], float("-inf"))
        return torch.cat([labels, pointers], -1) / states.shape[-1] ** 0.5


Step = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def constrained_search(step: Step, reorder: Callable[[torch.Tensor], None], grammar: Grammar,
                       n_words: list[int], num_beams: int, max_length: int) -> list[list[int]]:
    """Beam search (greedy when `num_beams` is 1) over index sequences the grammar allows.

    `step(rows, last)` gives log-probabilities (N, V) for N live hypotheses, `rows` being their
    example and `last` their last index (None at the start); `reorder(parents)` keeps the
    decoder cache of the hypotheses that go on. A hypothesis is only extended with indices after
    which it can still end within `max_length`, so every result ends with the end label and
    parses into whole units. Scores are length-normalised log-probabilities; an example stops
    once it has `num_beams` finished hypotheses."""
    alive = [(b, [], 0.0, State()) for b in range(len(n_words))]  # example, indices, score, state
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in n_words]
    last = None
    for t in range(max_length):
        budget = max_length - t
        logp = step(torch.tensor([h[0] for h in alive]), last).float()
        allowed = torch.zeros_like(logp, dtype=torch.bool)
        for i, (b, _, _, state) in enumerate(alive):
            labels, words = grammar.allowed(state, n_words[b], budget)
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
