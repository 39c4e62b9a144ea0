"""Experiment tracking: metrics.jsonl always, TensorBoard (offline) when `train.report_to` asks,
both with the same numbers; a tracker whose package is missing stops the run before it starts."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest
from accelerate.utils import LoggerType

from genie.config import GenieConfig, TrainConfig, load_config
from genie.errors import GenieError
from genie.training.run import train

pytestmark = pytest.mark.slow


def test_report_to_offers_every_tracker_accelerate_has():
    offered = next(f for f in dataclasses.fields(TrainConfig) if f.name == "report_to").metadata["choices"]
    assert set(offered) == {"none", *(str(tracker) for tracker in LoggerType)}
    assert GenieConfig().train.report_to == "none"


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_tracker_without_its_package_is_refused_before_the_run_starts(tmp_path):
    cfg = load_config("configs/mner.yaml", [f"train.output_dir={tmp_path / 'run'}", "train.report_to=wandb",
                                            f"data.demo_dir={tmp_path / 'demo'}"])
    with pytest.raises(GenieError, match="train.report_to=wandb needs the wandb package"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_tensorboard_gets_the_numbers_of_metrics_jsonl(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(load_config("configs/mner.yaml", [f"train.output_dir={out}", f"data.demo_dir={tmp_path / 'demo'}",
                                            "data.demo_train_tweets=96", "train.epochs=2", "train.eval_every_epochs=1",
                                            "train.report_to=tensorboard", "decode.max_new_tokens=24"]))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "loss" in line]
    evaluations = [line for line in lines if "dev" in line]
    assert [line["step"] for line in steps] == list(range(1, 7))  # 96 tweets in batches of 32, 2 epochs
    assert [(line["step"], line["epoch"]) for line in evaluations] == [(3, 1), (6, 2)]
    assert all(line["examples_per_second"] > 0 and line["lr"] > 0 for line in steps)
    assert steps[-1]["loss"] < steps[0]["loss"]

    events = EventAccumulator(str(out / "tracking" / out.name))
    events.Reload()
    for name in ("loss", "lm_loss", "lr", "examples_per_second"):
        logged = [(event.step, event.value) for event in events.Scalars(name)]
        assert logged == [(line["step"], pytest.approx(line[name], rel=1e-6)) for line in steps], name
    assert [(event.step, event.value) for event in events.Scalars("dev/mner")] == [
        (line["step"], pytest.approx(line["dev"]["mner"], rel=1e-6)) for line in evaluations]
