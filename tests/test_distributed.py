"""`accelerate launch` with two CPU processes (gloo) trains the MNER demo to the scores of one
process with the same global batch, decoding gathers every test tweet once, in order, and
`genie predict` writes what one process writes.

The launch: in accelerate 1.15 `--cpu` starts a single process whatever `--num_processes` says
(more need mpirun), and `--multi_gpu` without CUDA starts two unrelated one-process runs (both
rank 0), which genie refuses (the last test). `--multi_gpu` with ACCELERATE_USE_CPU=1 makes
torchrun start two workers that accelerate joins in a gloo group (MULTI_CPU); the run prints its
process count. HF_HOME points at an empty
folder so no user accelerate config is read, port 0 lets accelerate pick a free port, and both
runs stay on the CPU (ACCELERATE_USE_CPU) with one thread each.

The reference is one process at batch 8 with gradient_accumulation_steps=2, not batch 16: process
p gets batches p, p+2, ... of the same seeded sampler (accelerate's BatchSamplerShard), so each
optimizer step of both runs averages the gradients of the same two 8-tweet batches. One batch of 16
is a different computation: genie appends the regions after the padded text, so an example's
encoding depends on its batch's width, and a token-mean loss over 16 is not the mean of two.

Tolerance: 1.0 F1 point on dev (best) and test. With dropout 0, halving and adding two gradients is
exact: the measured runs end with bitwise-equal weights and equal scores (dev 67.89, test 72.34).
What may still differ is the last decode round of each split: accelerate fills the short final
batch (10 tweets) with tweets from the split's start, which gather_for_metrics drops, but which can
widen that batch's padding and so change the encoding of those 10 tweets. 1.0 point is 3-4 of their
14-16 entities changing; step-accounting or gathering faults move the scores far more (the run's
dev F1 is about 46 at two thirds of its steps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genie.records import read_records

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1.0
# 40 optimizer steps an epoch: max_steps ends the run in epoch 6, evaluated (after epoch 4) because
# the step total is reached, so a step count or schedule in the wrong units shows. Decode batches of
# 29 leave an uneven last round on 300 tweets: 10 real ones and 48 fillers.
RUN = ["--config", "configs/mner.yaml", "data.demo_train_tweets=640", "train.batch_size=8", "train.epochs=7",
       "train.max_steps=240", "train.eval_every_epochs=4", "train.learning_rate=0.005", "model.dropout=0.0",
       "decode.batch_size=29", "decode.max_new_tokens=40"]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


def train(prefix: list[str], out: Path, demo: Path, env: dict, *overrides: str) -> tuple[str, dict]:
    done = subprocess.run([*prefix, "-m", "genie.cli", "train", *RUN, f"train.output_dir={out}",
                           f"data.demo_dir={demo}", *overrides], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout, json.loads((out / "test_metrics.json").read_text())


def test_two_processes_score_like_one_and_gather_each_tweet_once(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1", "HF_HOME": str(tmp_path / "hf")}
    demo = tmp_path / "demo"  # built by the two-process run: its main process first, then the other reads it
    log, two = train(LAUNCH, tmp_path / "two", demo, env)
    reference_log, one = train([sys.executable], tmp_path / "one", demo, env, "train.gradient_accumulation_steps=2")

    assert "240 steps, 2 process(es)" in log and "240 steps, 1 process(es)" in reference_log
    for metrics in (one, two):
        assert metrics["dev_best"] >= 60 and metrics["mner"]["f1"] >= 60, metrics
    assert abs(two["dev_best"] - one["dev_best"]) <= TOLERANCE, (two["dev_best"], one["dev_best"])
    assert abs(two["mner"]["f1"] - one["mner"]["f1"]) <= TOLERANCE, (two["mner"], one["mner"])
    assert two["features"] == one["features"]  # the processes' image reads, merged

    gold = read_records(demo / "mner" / "test.jsonl")
    assert [r.id for r in read_records(tmp_path / "two" / "test_predictions.jsonl")] == [r.id for r in gold]
    assert two["mner"]["gold"] == sum(len(r.entities) for r in gold)

    # genie predict launched on two processes writes the file one process writes, byte for byte
    # (batches of 29 over 300 posts: an uneven last round), and prints one summary.
    with open(tmp_path / "posts.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"id": r.id, "text": " ".join(r.tokens), "image": r.image_id}) + "\n"
                          for r in gold)
    outputs = {}
    for name, prefix in (("one", [sys.executable]), ("two", LAUNCH)):
        outputs[name] = tmp_path / f"predicted-{name}.jsonl"
        done = subprocess.run([*prefix, "-m", "genie.cli", "predict", "--checkpoint", str(tmp_path / "one" / "best"),
                               "--input", str(tmp_path / "posts.jsonl"), "--output", str(outputs[name]),
                               "--features", str(demo / "mner" / "features"), "--batch-size", "29"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        assert done.stderr.count("genie: 300 predictions in") == 1 and done.stdout.count('"posts": 300') == 1
    assert outputs["two"].read_bytes() == outputs["one"].read_bytes()


def test_processes_that_run_alone_are_refused(tmp_path):
    """The launch without ACCELERATE_USE_CPU starts two unrelated one-process runs on one folder;
    each stops at once, naming the fix."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("ACCELERATE_USE_CPU", None)
    done = subprocess.run([*LAUNCH, "-m", "genie.cli", "train", *RUN, f"train.output_dir={tmp_path / 'run'}",
                           f"data.demo_dir={tmp_path / 'demo'}"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    assert done.stderr.count("genie: error: 2 processes were launched but the run sees 1") == 2
    assert "ACCELERATE_USE_CPU=1" in done.stderr and not (tmp_path / "run" / "checkpoints").exists()
