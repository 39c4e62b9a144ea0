"""`make train TASK=<task>` learns for every task beside GMNER (tests/test_train_gmner.py): the
default config, on the task's own demo, reaches >= 85 on its headline metric on the demo test
split, and `genie decode` + `genie evaluate` reproduce the run's score from its best checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from genie.config import load_config
from genie.records import read_records
from genie.tasks import get_task
from genie.train import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["jmere", "fmnerg", "mner", "mre"])  # longest first
def test_default_demo_run_learns_and_the_cli_reproduces_it(name, tmp_path):
    task, out, demo = get_task(name), tmp_path / "run", tmp_path / "demo"
    metrics = train(load_config(f"configs/{name}.yaml", [f"train.output_dir={out}", f"data.demo_dir={demo}"]))
    assert metrics[task.headline]["f1"] >= 85.0, metrics
    test_file = demo / name / "test.jsonl"
    gold = read_records(test_file)
    expected = sum(len(r.relations) for r in gold) if name in ("mre", "jmere") else sum(len(r.entities) for r in gold)
    assert metrics[task.headline]["gold"] == expected > 0

    preds = tmp_path / "preds.jsonl"
    decoded = subprocess.run([sys.executable, "-m", "genie.cli", "decode", "--checkpoint", str(out / "best"),
                              "--input", str(test_file), "--output", str(preds)], capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    assert [r.id for r in read_records(preds)] == [r.id for r in gold]
    scored = subprocess.run([sys.executable, "-m", "genie.cli", "evaluate", "--task", name, "--gold", str(test_file),
                             "--pred", str(preds)], capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)[task.headline] == metrics[task.headline]
