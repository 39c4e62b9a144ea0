"""Batches of similar length, so dynamic padding pads little (the published code padded every
batch to 200 tokens).

Training batches are grouped within windows of the epoch's order, as Hugging Face's
`LengthGroupedSampler` does: the order stays random at the scale of the epoch while each
batch holds neighbours in length. Every draw depends only on the seed and the epoch (which
accelerate sets through `sampler.set_epoch`), so a run resumed mid-epoch sees the same batches.
Decoding needs no randomness: examples are simply sorted by length."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler

WINDOW_BATCHES = 50  # batches per sorting window (Hugging Face's mega-batch multiplier)


class EpochShuffle(Sampler[int]):
    """A fresh permutation of range(n) each epoch, from the seed and the epoch alone."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(self.n, generator=generator).tolist()


class LengthGroupedBatches(Sampler[list[int]]):
    """The sampler's order cut into windows of `window` batches; each window sorted by length
    and cut into batches; the full batches shuffled, the one short batch (if any) last, where
    accelerate's sharding across processes expects it.

    `sampler` must have `epoch` (EpochShuffle, TemperatureSampler): accelerate sets the epoch on
    the sampler inside a batch sampler, and this batch sampler's shuffle follows it."""

    def __init__(self, sampler, lengths: list[int], batch_size: int, window: int = WINDOW_BATCHES):
        self.sampler, self.lengths, self.batch_size, self.window = sampler, lengths, batch_size, window
        self.drop_last = False  # read by accelerate's BatchSamplerShard

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        order = list(self.sampler)
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            window = sorted(order[start:start + span], key=lambda i: -self.lengths[i])
            batches += [window[k:k + self.batch_size] for k in range(0, len(window), self.batch_size)]
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        generator = torch.Generator().manual_seed(self.sampler.seed + self.sampler.epoch + 1)
        yield from (full[k] for k in torch.randperm(len(full), generator=generator).tolist())
        yield from short


class SortedBatches(Sampler[list[int]]):
    """Decoding batches, longest first: each batch pads to nearly its own examples' length, a
    batch too large for memory fails at once rather than at the end, and the one short batch
    comes last (with `batch_size` and `drop_last`, accelerate shards it like a BatchSampler)."""

    def __init__(self, lengths: list[int], batch_size: int):
        self.lengths, self.batch_size, self.drop_last = lengths, batch_size, False

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        order = sorted(range(len(self.lengths)), key=lambda i: -self.lengths[i])
        yield from (order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size))
