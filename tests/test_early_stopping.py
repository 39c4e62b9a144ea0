"""Early stopping (`train.patience`, `train.min_delta`): a run stops at the evaluation the rule
names, is finished like any other (best/, test metrics, the stop in metrics.jsonl), a run killed
before its stop resumes to the same stop, and patience is not part of the run's identity."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from metrics_lines import logged

from genie.training.loop import evaluations_without_gain

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("early_stopping")]
EPOCHS = 12  # the cap; the rule stops the run long before it


def command(out: Path, demo: Path, *extra: str) -> list[str]:
    # min_delta 20 F1 points: after the first evaluation no later one counts as a gain (a tiny
    # model does not gain 20 points an epoch here), so patience 2 stops at the third evaluation.
    return [sys.executable, "-m", "genie.cli", "train", "--config", "configs/mner.yaml", f"train.output_dir={out}",
            f"data.demo_dir={demo}", "data.demo_train_tweets=160", f"train.epochs={EPOCHS}",
            "train.eval_every_epochs=1", "train.checkpoint_every_steps=1", "train.patience=2", "train.min_delta=20",
            *extra]


def dev_scores(out: Path) -> list[float]:
    return [line["dev"]["mner"] for line in logged(out) if "dev" in line]


def test_the_rule_counts_evaluations_since_the_last_gain_over_min_delta():
    assert evaluations_without_gain([], 0.0) == 0
    assert evaluations_without_gain([10, 12, 11, 12], 0.0) == 2  # 12 is no gain over 12
    assert evaluations_without_gain([10, 12, 12.5], 1.0) == 1  # 12.5 is within min_delta of 12
    assert evaluations_without_gain([10, 12, 12.5, 13.5], 1.0) == 0


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("early")
    done = subprocess.run(command(root / "run", root / "demo"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return root / "run", root / "demo", done.stdout + done.stderr


def test_a_run_stops_at_the_evaluation_the_rule_names_and_is_finished(stopped):
    out, _, stdout = stopped
    scores = dev_scores(out)
    stop = next(k for k in range(1, len(scores) + 1) if evaluations_without_gain(scores[:k], 20.0) >= 2)
    assert len(scores) == stop == 3  # no evaluation past the stop: epochs 4..12 never ran
    lines = logged(out)
    assert "no dev gain over 20 in 2 evaluations" in lines[-1]["stopped"] and lines[-1]["epoch"] == 3
    assert max(line.get("epoch", 0) for line in lines) == 3
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["stopped_early"] and metrics["epochs_trained"] == 3
    assert metrics["best_epoch"] == 1 + scores.index(max(scores)) and metrics["dev_best"] == max(scores)
    assert (out / "best" / "model.safetensors").is_file() and (out / "test_predictions.jsonl").is_file()
    assert "stopped early" in stdout
    headline = stdout.rstrip("\n").splitlines()[-1]  # the run's last line says where everything is
    assert headline.startswith(f"genie: test MNER F1 {metrics['mner']['f1']:.2f}")
    assert f"best dev {max(scores):.2f} at epoch {metrics['best_epoch']} of 3 (stopped early)" in headline
    assert f"{out / 'test_metrics.json'}" in headline and f"{out / 'test_predictions.jsonl'}" in headline


def test_a_run_killed_before_its_stop_resumes_to_the_same_stop(stopped, tmp_path):
    expected, demo, _ = stopped
    out = tmp_path / "killed"
    proc = subprocess.Popen(command(out, demo), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((out / "checkpoints").glob("step_1[0-9]")) and proc.poll() is None:  # inside epoch 3
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(command(out, demo), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "stopped early" in resumed.stdout
    assert logged(out) == logged(expected)
    assert json.loads((out / "test_metrics.json").read_text()) == json.loads((expected / "test_metrics.json").read_text())


def test_patience_is_not_the_run_s_identity(stopped, tmp_path):
    """A finished run asked again with another patience is the same run, reprinted; an unfinished
    one resumed with another patience stops where a run started with it would have."""
    out, demo, _ = stopped
    again = subprocess.run(command(out, demo, "train.patience=5"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "this run has finished" in again.stdout
    assert len(dev_scores(out)) == 3 and "resumed from" not in again.stdout

    changed = tmp_path / "changed"  # started without early stopping, killed in epoch 2
    proc = subprocess.Popen(command(changed, demo, "train.patience=0"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (changed / "checkpoints" / "step_7").is_dir() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(command(changed, demo), capture_output=True, text=True)  # patience 2 now
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert logged(changed) == logged(out)
