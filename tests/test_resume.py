"""A run killed with SIGKILL after a checkpoint resumes to the same weights and metrics: with
dropout and the stochastic bottleneck on, so every random draw must continue where it was."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def command(out: Path, demo: Path) -> list[str]:
    return [sys.executable, "-m", "genie.cli", "train", "--config", "configs/gmner.yaml",
            f"train.output_dir={out}", f"data.demo_dir={demo}", "data.demo_train_tweets=160",
            "train.epochs=3", "train.eval_every_epochs=1", "train.checkpoint_every_steps=1",
            "train.keep_checkpoints=100", "model.dropout=0.1", "regularizers.bottleneck=true",
            "regularizers.alignment=cag"]


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    """The whole model (backbone and heads) as saved by the last checkpoint, step 15."""
    return load_file(str(out / "checkpoints" / "step_15" / "model.safetensors"))


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    demo = tmp_path / "demo"
    straight = tmp_path / "straight"
    subprocess.run(command(straight, demo), check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed, demo), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "step_9").is_dir():
        assert proc.poll() is None and time.monotonic() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "test_metrics.json").exists()
    # Make the last checkpoint step 7: mid-epoch 2 (5 steps an epoch), after the first dev
    # evaluation, so data position, RNG, optimizer, scheduler and best-so-far all matter.
    for later in (killed / "checkpoints").glob("step_*"):
        if int(later.name.split("_")[1]) > 7:
            shutil.rmtree(later)

    resumed = subprocess.run(command(killed, demo), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    expected, got = final_weights(straight), final_weights(killed)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    metrics = [json.loads((out / "test_metrics.json").read_text()) for out in (straight, killed)]
    assert metrics[0] == metrics[1]
