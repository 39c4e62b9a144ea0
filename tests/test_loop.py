"""The Trainer takes its parts made outside it, so the loop is tested here on a one-batch model in
seconds: every optimizer step applied and logged, evaluations and checkpoints on schedule, the
best dev epoch kept, gradient accumulation, early stopping, and a NaN step left out of the weights.
(`make train` and the slow tests run the same loop through `genie train`.)"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from genie.config import load_config
from genie.data import Collator
from genie.demo import build_demo
from genie.model.modeling import GenieModel
from genie.tasks import get_task
from genie.training.loop import Trainer
from genie.training.metrics_log import MetricsLog
from genie.training.precision import make_accelerator
from genie.training.run import build_optimizer, linear_schedule, prepare, task_part, total_steps, train_loader
from genie.training.run_folder import RunFolder
from genie.training.run_setup import build_model, load_task_data

MNER = get_task("mner")
TRAIN = 8  # train records: one batch of 8


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    build_demo(out, MNER.demo, n_train=TRAIN, n_dev=6, n_test=4, feature_dim=16)
    return out


def trainer(demo, out, *overrides) -> Trainer:
    """A Trainer over a tiny T5 and the demo, its parts made here as `genie.training.run.assemble` makes them."""
    cfg = load_config("configs/mner.yaml", [
        f"data.dir={demo}", f"features.dir={demo / 'features'}", "features.dim=16", "model.d_model=32",
        "model.heads=2", "model.d_ff=64", "model.vocab_size=300", f"train.batch_size={TRAIN}",
        "train.learning_rate=0.01", "train.epochs=4", "train.eval_every_epochs=1", "train.warmup_ratio=0",
        "decode.max_new_tokens=8", f"train.output_dir={out}", *overrides])
    torch.manual_seed(0)
    data = load_task_data(cfg, MNER)
    tokenizer, model = build_model(cfg, [data])
    parts = [task_part(cfg, data, tokenizer)]
    loader = train_loader(cfg, [parts[0].sets["train"]], Collator(tokenizer.pad_token_id))
    optimizer = build_optimizer(model, cfg)
    accelerator = make_accelerator("no", cpu=True,
                                   gradient_accumulation_steps=cfg.train.gradient_accumulation_steps)
    steps = total_steps(cfg, len(loader), accelerator.num_processes)
    scheduler = linear_schedule(optimizer, cfg, steps, accelerator.num_processes)
    model, optimizer, loader, scheduler = prepare(accelerator, cfg, parts, model, optimizer, loader, scheduler)
    out.mkdir(parents=True, exist_ok=True)
    made = Trainer(cfg, accelerator, tokenizer, model, optimizer, scheduler, loader, parts, steps, RunFolder(out),
                   MetricsLog(out, True))
    accelerator.register_for_checkpointing(made.state)
    return made


def lines(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_fit_applies_and_logs_every_step_evaluates_each_epoch_and_keeps_the_best(demo, tmp_path):
    run = trainer(demo, tmp_path / "run", "train.keep_checkpoints=2")
    assert run.total_steps == 4 and run.state.completed_steps == 0  # built whole: nothing set up later
    run.fit()
    logged = lines(tmp_path / "run")
    steps = [line for line in logged if "loss" in line]
    assert [line["step"] for line in steps] == [1, 2, 3, 4]
    losses = [line["loss"] for line in steps]
    assert all(after < before for before, after in zip(losses, losses[1:]))  # each step reached the weights
    assert [line["lr"] for line in steps] == pytest.approx([0.01, 0.0075, 0.005, 0.0025])  # linear decay
    dev = [line["dev"]["mner"] for line in logged if "dev" in line]
    assert len(dev) == 4 and run.state.dev_scores == dev
    assert run.state.best_metric == max(dev) and run.state.best_epoch == 1 + dev.index(max(dev))
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_3", "step_4"]
    best = GenieModel.from_pretrained(tmp_path / "run" / "best")
    assert best.backbone.config.d_model == 32 and (tmp_path / "run" / "best" / "tokenizer_config.json").is_file()
    metrics = run.test()
    assert metrics["best_epoch"] == run.state.best_epoch and metrics["epochs_trained"] == 4
    assert len((tmp_path / "run" / "test_predictions.jsonl").read_text().splitlines()) == 4


def test_accumulated_batches_make_one_optimizer_step(demo, tmp_path):
    run = trainer(demo, tmp_path / "run", f"train.batch_size={TRAIN // 2}", "train.gradient_accumulation_steps=2",
                  "train.epochs=2", "train.eval_every_epochs=2")
    assert run.total_steps == 2
    run.fit()
    steps = [line for line in lines(tmp_path / "run") if "loss" in line]
    assert [line["step"] for line in steps] == [1, 2] and run.state.completed_steps == 2
    assert run.state.step_in_epoch == 0 and run.state.epoch == 2


def test_no_gain_stops_the_run_early_and_says_why(demo, tmp_path):
    run = trainer(demo, tmp_path / "run", "train.epochs=5", "train.patience=1", "train.min_delta=100")
    run.fit()  # no F1 gains 100 points: the second evaluation is no gain over the first
    assert run.state.stopped_early and run.state.epoch == 2 and run.state.completed_steps == 2
    assert "no dev gain over 100 in 1 evaluations" in lines(tmp_path / "run")[-1]["stopped"]


def test_a_nan_step_is_skipped_and_counted_and_nothing_of_it_reaches_the_weights(demo, tmp_path, monkeypatch):
    run = trainer(demo, tmp_path / "run", "train.on_nonfinite=skip", "train.epochs=3", "train.eval_every_epochs=3",
                  "train.checkpoint_every_steps=1", "train.keep_checkpoints=3")
    forward = GenieModel.forward

    def nan_at_step_2(self, batch, *args):
        losses = forward(self, batch, *args)
        if self.training and run.state.completed_steps == 1:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(GenieModel, "forward", nan_at_step_2)
    run.fit()
    assert run.state.skipped_steps == 1 and run.state.completed_steps == 3
    weights = {step: load_file(str(tmp_path / "run" / "checkpoints" / f"step_{step}" / "model.safetensors"))
               for step in (1, 2, 3)}
    assert all(torch.equal(weights[1][key], weights[2][key]) for key in weights[1])  # step 2 left out
    assert not all(torch.equal(weights[2][key], weights[3][key]) for key in weights[2])  # step 3 applied
    assert all(torch.isfinite(value).all() for value in weights[3].values())
