"""Crashes lose nothing and change nothing: a training run killed with SIGKILL at several random
moments resumes to the same weights and metrics as an uninterrupted run, the same seed gives the
same run twice, and a killed `genie decode` resumes and writes each input exactly once. With
dropout and the stochastic bottleneck on, so every random draw must continue where it was."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from metrics_lines import logged
from safetensors.torch import load_file

from genie.records import read_records

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("resume")]
STEPS = 15  # 3 epochs of 5 steps


def command(out: Path, demo: Path) -> list[str]:
    return [sys.executable, "-m", "genie.cli", "train", "--config", "configs/gmner.yaml",
            f"train.output_dir={out}", f"data.demo_dir={demo}", "data.demo_train_tweets=160",
            "train.epochs=3", "train.eval_every_epochs=1", "train.checkpoint_every_steps=1",
            "train.keep_checkpoints=2", "model.dropout=0.1", "regularizers.bottleneck=true",
            "regularizers.alignment=cag"]


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    """The whole model (backbone and heads) as saved by the last checkpoint."""
    return load_file(str(out / "checkpoints" / f"step_{STEPS}" / "model.safetensors"))


def assert_same_run(expected: Path, got: Path) -> None:
    a, b = final_weights(expected), final_weights(got)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    metrics = [json.loads((out / "test_metrics.json").read_text()) for out in (expected, got)]
    assert metrics[0] == metrics[1]
    # metrics.jsonl: each step and evaluation once, as the uninterrupted run logged them (but for speed)
    assert logged(expected) == logged(got)


@pytest.fixture(scope="session")
def straight(tmp_path_factory) -> tuple[Path, Path]:
    """An uninterrupted run, and the demo it used."""
    root = tmp_path_factory.mktemp("resume")
    subprocess.run(command(root / "straight", root / "demo"), check=True, capture_output=True)
    return root / "straight", root / "demo"


def test_the_same_seed_gives_the_same_run(straight, tmp_path):
    expected, demo = straight
    subprocess.run(command(tmp_path / "again", demo), check=True, capture_output=True)
    assert_same_run(expected, tmp_path / "again")


def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(straight, tmp_path):
    expected, demo = straight
    out = tmp_path / "killed"
    rng = random.Random(7)
    kills = 0
    # Killed after a random step's checkpoint plus a random delay: mid-step, mid-evaluation or
    # mid-checkpoint, wherever that lands; then started again until it ends by itself.
    for target in sorted(rng.sample(range(2, STEPS), 3)):
        proc = subprocess.Popen(command(out, demo), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not (out / "checkpoints" / f"step_{target}").is_dir() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        assert not (out / "test_metrics.json").exists() or proc.returncode == 0
    assert kills >= 2
    resumed = subprocess.run(command(out, demo), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert not list((out / "checkpoints").glob(".*.tmp")) and not list(out.glob(".*.tmp"))
    assert_same_run(expected, out)


def test_a_killed_decode_resumes_and_writes_each_input_once(straight, tmp_path):
    expected, demo = straight
    test_file = demo / "gmner" / "test.jsonl"
    output = tmp_path / "preds.jsonl"
    partial = output.with_name(output.name + ".partial")
    decode = [sys.executable, "-m", "genie.cli", "decode", "--checkpoint", str(expected / "best"), "--input",
              str(test_file), "--output", str(output), "decode.batch_size=10", "decode.chunk_size=20",
              "decode.max_new_tokens=48"]
    proc = subprocess.Popen(decode, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (partial.is_file() and partial.read_bytes().count(b"\n") > 60):
        assert proc.poll() is None and time.monotonic() < deadline, "decode ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not output.exists()
    journaled = json.loads(output.with_name(output.name + ".journal").read_text().splitlines()[-1])["inputs"]
    before = dict(enumerate(map(json.loads, partial.read_text().split("\n")[:-1])))  # whole lines written
    assert 60 <= journaled <= len(before) < 300  # a chunk written but not yet journaled is written again

    resumed = subprocess.run(decode, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_with"] == journaled and summary["records"] == 300
    assert resumed.stderr.rstrip("\n").splitlines()[-1].startswith(f"genie: 300 predictions in {output}")
    assert not partial.exists()
    gold, got = read_records(test_file), read_records(output)
    assert [r.id for r in got] == [r.id for r in gold]  # each input once, in input order
    for index, record in before.items():  # what was decoded before the kill is kept as it was
        assert got[index].to_dict() == record
