"""`make train TASK=<task>` learns for every task beside GMNER (tests/test_train_gmner.py), and
so does the index target format for every task that has one, with length-grouped batches: on
the task's own demo, the run reaches >= 85 on its headline metric on the demo test split, and
`genie decode` + `genie evaluate` reproduce the run's score from its best checkpoint. One of
them (MRE, text) trains and decodes in bf16. A task given objects (MORE) loses its score when
decoded with every region feature zeroed: the answer is in the object's region."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from demo_sets import task_config

from genie.inference.files import decode_file
from genie.records import read_records
from genie.tasks import TASKS, get_task
from genie.training.run import train

pytestmark = pytest.mark.slow


# Every registered task, in the text format and in the index format where it has one, on the
# task's config (`make train TASK=<task>`), but for two runs trained elsewhere: GMNER's text run
# (tests/test_train_gmner.py) and MNER's, left out to keep CI short (GMNER's run scores its MNER
# reading, and the MNER index run trains the MNER task itself).
ELSEWHERE = {("gmner", "text"), ("mner", "text")}
# Shorter schedules for the index runs: pointer targets are short, so a step costs about a third
# of a text step; the text-vs-index table of
# docs/tasks-and-formats.md has these runs with random batches.
SCHEDULES = {("gmner", "index"): ["train.epochs=12", "train.batch_size=16", "train.eval_every_epochs=3"],
             ("jmere", "index"): ["train.epochs=6"], ("fmnerg", "index"): ["train.epochs=6"]}
# These runs use length-grouped batches (faster, docs/training.md), so learning must survive them too;
# GMNER's default run (tests/test_train_gmner.py) trains with the default random batches.
GROUPED = "data.group_by_length=true"
# One run trains in bf16 (autocast on the CPU): it must learn as well, and `genie decode` of its
# checkpoint, which decodes in bf16 too, must reproduce its score.
BF16 = {("mre", "text"): ["train.mixed_precision=bf16"]}
RUNS = [(name, fmt, [GROUPED, f"target_format={fmt}", *SCHEDULES.get((name, fmt), []), *BF16.get((name, fmt), [])])
        for fmt in ("text", "index") for name, task in TASKS.items()
        if (fmt == "text" or task.index_format) and (name, fmt) not in ELSEWHERE]


@pytest.mark.parametrize("name, fmt, overrides", RUNS, ids=[f"{n}-{f}" for n, f, _ in RUNS])  # longest first
def test_demo_run_learns_and_the_cli_reproduces_it(name, fmt, overrides, tmp_path):
    task, out, demo = get_task(name), tmp_path / "run", tmp_path / "demo"
    metrics = train(task_config(name, [f"train.output_dir={out}", f"data.demo_dir={demo}", *overrides]))
    assert metrics[task.headline]["f1"] >= 85.0, metrics
    parser = metrics["parser"]  # constrained decoding, text or index: every generated unit is read
    assert parser["malformed"] == parser["unmatched"] == parser.get("dead_ends", 0) == 0, parser
    test_file = demo / name / "test.jsonl"
    gold = read_records(test_file)
    expected = sum(len(r.relations) if task.predicts_relations else len(r.entities) for r in gold)
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
    if task.given_objects:  # the answer is in the given object's region: with every feature zeroed, it is lost
        decode_file(out / "best", test_file, tmp_path / "blind.jsonl", overrides=["features.zero=true"])
        blind = task.evaluate(gold, read_records(tmp_path / "blind.jsonl"))
        assert blind[task.headline]["f1"] < metrics[task.headline]["f1"] - 15.0, blind
