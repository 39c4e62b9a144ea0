"""A task registered from outside genie (here a throwaway copy of MNER under another name, with
its own builder) flows through `genie convert` -> `train` -> `decode` -> `evaluate` with no edit
to genie: the registry is the only place that names tasks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from genie.cli import main
from genie.config import load_config
from genie.data_builders import BuildResult
from genie.demo import build_demo
from genie.inference.files import decode_file
from genie.records import read_records
from genie.tasks import TASKS, get_task, register
from genie.training.run import train

pytestmark = pytest.mark.slow


def build_toy(source: Path, split: str, shift: Path | None = None) -> BuildResult:
    """The toy release is MNER records under another task name; `shift` is an option only this
    task's builder takes (`genie convert --shift`)."""
    records = [replace(r, task="toy") for r in read_records(Path(source) / f"{split}.jsonl")]
    return BuildResult(records, {"records": len(records), "shift_given": int(shift is not None)})


@pytest.fixture
def toy():
    class Toy(type(get_task("mner"))):
        name = "toy"
        builder = staticmethod(build_toy)
        builder_options = {"shift": "a toy option"}
        prompts = get_task("mner").prompts_file

    task = register(Toy())
    yield task
    del TASKS["toy"]


def test_a_new_task_converts_trains_decodes_and_evaluates(toy, tmp_path, capsys):
    release, data = tmp_path / "release", tmp_path / "data"
    build_demo(release, get_task("mner").demo, n_train=96, n_dev=40, n_test=40)
    for split in ("train", "dev", "test"):
        assert main(["convert", "--task", "toy", "--source", str(release), "--split", split,
                     "--out", str(data / f"{split}.jsonl"), "--shift", str(tmp_path)]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["shift_given"] == 1
    assert main(["convert", "--task", "mner", "--source", str(release), "--split", "dev", "--out",
                 str(tmp_path / "x.jsonl"), "--shift", str(tmp_path)]) == 2  # the option is the toy task's only
    assert "--shift applies to --task toy only" in capsys.readouterr().err

    cfg = load_config(None, ["task=toy", f"data.dir={data}", f"features.dir={release}/features", "features.dim=64",
                             f"train.output_dir={tmp_path / 'run'}", "train.epochs=1", "train.batch_size=32"])
    metrics = train(cfg)
    gold = read_records(data / "test.jsonl")
    assert metrics["mner"]["gold"] == sum(len(r.entities) for r in gold) > 0
    decode_file(tmp_path / "run", data / "test.jsonl", tmp_path / "preds.jsonl")
    predictions = read_records(tmp_path / "preds.jsonl")
    assert [p.id for p in predictions] == [g.id for g in gold] and {p.task for p in predictions} == {"toy"}
    assert toy.evaluate(gold, predictions)["mner"] == metrics["mner"]
