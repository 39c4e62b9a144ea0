"""Length-grouped training batches and length-sorted decoding batches (`genie/training/batching.py`)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from demo_sets import small_demos, untrained_index_model
from torch.utils.data import BatchSampler, DataLoader

from genie.data import REGION_KEYS, Collator
from genie.training.batching import EpochShuffle, LengthGroupedBatches, SortedBatches
from genie.training.sampling import TemperatureSampler


def skewed_lengths(n: int, seed: int = 0) -> list[int]:
    """Mostly short, a long tail: the shape of tweet lengths."""
    rng = random.Random(seed)
    return [min(200, int(rng.lognormvariate(3.3, 0.5))) + 2 for _ in range(n)]


def padding(batches: list[list[int]], lengths: list[int]) -> int:
    """Padded tokens when each batch is padded to its longest example (dynamic padding)."""
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_grouped_batches_cover_the_epoch_once_and_pad_far_less():
    lengths = skewed_lengths(1003)
    grouped = LengthGroupedBatches(EpochShuffle(1003, seed=1), lengths, batch_size=16)
    batches = list(grouped)
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert len(batches) == len(grouped) == 63
    assert [len(b) for b in batches[:-1]] == [16] * 62 and len(batches[-1]) == 1003 % 16  # short one last
    random_batches = list(BatchSampler(EpochShuffle(1003, seed=1), 16, drop_last=False))
    assert padding(batches, lengths) < padding(random_batches, lengths) / 5


def test_grouped_batches_depend_only_on_seed_and_epoch():
    lengths = skewed_lengths(500)
    grouped = LengthGroupedBatches(EpochShuffle(500, seed=7), lengths, batch_size=8, window=10)
    first = list(grouped)
    assert list(grouped) == first
    grouped.set_epoch(1)
    second = list(grouped)
    assert second != first and sorted(map(tuple, second)) != sorted(map(tuple, first))
    again = LengthGroupedBatches(EpochShuffle(500, seed=7), lengths, batch_size=8, window=10)
    again.set_epoch(1)
    assert list(again) == second


@pytest.mark.parametrize("base", ["shuffle", "temperature"])
@pytest.mark.parametrize("grouped", [True, False])
def test_a_resumed_epoch_continues_the_same_batches_through_accelerate(base, grouped):
    """What `train` does on resume: `set_epoch` on the prepared loader, then `skip_first_batches`."""
    accelerator = Accelerator(cpu=True)
    lengths = skewed_lengths(60)

    def loader():
        order = EpochShuffle(60, seed=0) if base == "shuffle" else TemperatureSampler([50, 10], 3.0, seed=0)
        batches = LengthGroupedBatches(order, lengths, 4, window=3) if grouped else BatchSampler(order, 4, False)
        return accelerator.prepare(DataLoader(list(range(60)), batch_sampler=batches))

    epochs = []
    for epoch in (0, 2):
        prepared = loader()
        prepared.set_epoch(epoch)
        epochs.append([batch.tolist() for batch in prepared])
    assert epochs[0] != epochs[1]  # accelerate's set_epoch reaches the sampler
    resumed = loader()
    resumed.set_epoch(2)
    assert [batch.tolist() for batch in accelerator.skip_first_batches(resumed, 5)] == epochs[1][5:]
    assert len(epochs[1]) == 15


def test_decoding_batches_are_sorted_longest_first_with_the_short_batch_last():
    lengths = skewed_lengths(101)
    batches = list(SortedBatches(lengths, 10))
    assert len(batches) == 11 and [len(b) for b in batches] == [10] * 10 + [1]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(101))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


@pytest.fixture(scope="module")
def gmner_demo(tmp_path_factory):
    return small_demos(tmp_path_factory.mktemp("demos"), ["gmner"], n_train=20, n_dev=12, n_test=4, feature_dim=16)


def with_masked_regions(batch: dict, extra: int) -> dict:
    """`batch` with `extra` more region slots, all masked, as a batch was before the cut."""
    wider = dict(batch)
    for key in (*REGION_KEYS, "slot_target"):
        if key in batch:
            tail = batch[key].new_zeros((*batch[key].shape[:1], extra, *batch[key].shape[2:]))
            wider[key] = torch.cat([batch[key], tail], 1)
    return wider


def test_region_slots_no_example_fills_are_cut_and_change_no_result(gmner_demo):
    """The collator keeps the slots up to the last one any example fills (one at least): the
    loss, the grounding and the decoded sequences are those of the batch with masked slots."""
    task, model, batch, _ = untrained_index_model(gmner_demo, "gmner", "tiny-t5", 0)
    mask = batch["region_mask"]
    assert mask[:, -1].any() and batch["slot_target"].shape[1] == mask.shape[1]  # nothing left to cut
    wider = with_masked_regions(batch, 6)
    with torch.inference_mode():
        cut, full = model(batch), model(wider)
        assert torch.allclose(cut["loss"], full["loss"], atol=1e-6)
        grammar = task.index_format.grammar
        assert model.generate_indices(batch, grammar, 1, 30) == model.generate_indices(wider, grammar, 1, 30)
    items = [{key: value[0].numpy() for key, value in wider.items() if key in REGION_KEYS}]
    text_only = Collator(0)([{**items[0], "region_mask": np.zeros_like(items[0]["region_mask"]), "index": 0,
                               "labels": [1], "slots": [], "input_ids": [1, 2]}])
    assert text_only["region_mask"].shape == (1, 1) and text_only["region_features"].shape[1] == 1
