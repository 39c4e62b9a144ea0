"""A NaN loss never reaches the weights: it stops the run with one line naming the step, or, with
`train.on_nonfinite=skip`, the optimizer step it is part of is skipped and counted."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import load_file

from genie.config import load_config
from genie.errors import GenieError
from genie.model.modeling import GenieModel
from genie.training.run import train

pytestmark = pytest.mark.slow
POISONED = 5  # the train example whose loss is made NaN


@pytest.fixture
def poisoned_loss(monkeypatch):
    """The loss of any batch holding train example POISONED becomes NaN (as a bad input or an
    overflow would make it); the batch indices that were poisoned are recorded."""
    forward, seen = GenieModel.forward, []

    def nan_forward(self, batch, *args):
        losses = forward(self, batch, *args)
        if self.training and POISONED in batch["index"].tolist():
            seen.append(batch["index"].tolist())
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(GenieModel, "forward", nan_forward)
    return seen


def config(tmp_path, *overrides):
    return load_config("configs/gmner.yaml", [
        f"train.output_dir={tmp_path / 'run'}", f"data.demo_dir={tmp_path / 'demo'}", "data.demo_train_tweets=64",
        "train.epochs=2", "train.batch_size=16", "train.eval_every_epochs=2", "model.d_model=32", "model.heads=2",
        "model.d_ff=64", "decode.max_new_tokens=24", *overrides])


def test_stop_names_the_step_and_leaves_the_last_checkpoint_finite(tmp_path, poisoned_loss):
    with pytest.raises(GenieError, match=r"step \d+ \(epoch 1, batch \d+\): .*loss nan: a NaN or inf .*stopped before it reached"):
        train(config(tmp_path, "train.checkpoint_every_steps=1"))
    assert len(poisoned_loss) == 1
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))
    for checkpoint in checkpoints:
        assert all(torch.isfinite(w).all() for w in load_file(str(checkpoint / "model.safetensors")).values())
    assert not (tmp_path / "run" / "test_metrics.json").exists()


def test_skip_drops_that_step_only_and_counts_it(tmp_path, poisoned_loss, capsys):
    metrics = train(config(tmp_path, "train.on_nonfinite=skip", "train.checkpoint_every_steps=1",
                           "train.keep_checkpoints=100"))
    assert len(poisoned_loss) == 2  # once an epoch
    assert metrics["skipped_steps"] == 2
    skipped = [int(n) for n in re.findall(r"step (\d+) \(epoch \d, batch \d+\): .* the step is skipped",
                                          capsys.readouterr().out)]
    assert len(skipped) == 2
    steps = {int(p.name.split("_")[1]): p for p in (tmp_path / "run" / "checkpoints").glob("step_*")}
    states = {n: load_file(str(path / "model.safetensors")) for n, path in steps.items()}
    for n in range(2, 9):  # a skipped step changes no weight; every other step changes them
        same = all(torch.equal(states[n][k], states[n - 1][k]) for k in states[n])
        assert same == (n in skipped), n
    assert all(torch.isfinite(w).all() for w in states[8].values())
    assert metrics["gmner"]["f1"] == metrics["gmner"]["f1"]  # a number, not NaN
