"""Temperature-scaled sampling over a multi-task training set (`data.sampling: temperature`).

Each epoch draws as many examples as the union holds: a task with probability
p(task) ~ size ** (1 / temperature), then that task's next example in a fresh shuffle (reshuffled
when a small task runs out). The draws depend only on the seed and the epoch (`set_epoch`, which
accelerate calls), so a run resumed mid-epoch sees the same order."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


def task_probabilities(sizes: list[int], temperature: float) -> torch.Tensor:
    weights = torch.tensor(sizes, dtype=torch.float64) ** (1.0 / temperature)
    return weights / weights.sum()


class TemperatureSampler(Sampler[int]):
    """Indices into a ConcatDataset of the tasks' train sets, in their order."""

    def __init__(self, sizes: list[int], temperature: float, seed: int):
        self.sizes, self.seed, self.epoch = sizes, seed, 0
        self.probabilities = task_probabilities(sizes, temperature)
        self.offsets = [sum(sizes[:k]) for k in range(len(sizes))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(self.sizes)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        tasks = torch.multinomial(self.probabilities, len(self), replacement=True, generator=generator).tolist()
        orders = [torch.randperm(n, generator=generator).tolist() for n in self.sizes]
        drawn = [0] * len(self.sizes)
        for k in tasks:
            if drawn[k] and drawn[k] % self.sizes[k] == 0:
                orders[k] = torch.randperm(self.sizes[k], generator=generator).tolist()
            yield self.offsets[k] + orders[k][drawn[k] % self.sizes[k]]
            drawn[k] += 1
