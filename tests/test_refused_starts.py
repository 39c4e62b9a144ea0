"""A start refused for a mistyped input leaves nothing new behind: no run folder, no .lock, no
run.json, so the corrected command starts as if the mistake had never run (no train.overwrite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genie.config import load_config
from genie.errors import GenieError
from genie.training.run import train
from genie.training.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[1]
FINGERPRINT = {"config": {"task": "mner"}}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.mark.parametrize("mistake, problem", [
    ("data.dir={here}/dtaa", "no such file"),
    ("features.dir={here}/no-features", "region-feature folder not found"),
    ("model.name={here}/backbones/typo", "no such local folder"),
    ("peft.method=lora", "peft.method=lora adapts a pretrained backbone"),  # refused after the claim
], ids=["data.dir", "features.dir", "model.name", "after-the-claim"])
def test_a_refused_start_leaves_no_run_folder(demo, tmp_path, mistake, problem):
    out = tmp_path / "runs" / "typo"
    settings = [f"data.demo_dir={demo}", "data.demo_train_tweets=40", "train.epochs=1", f"train.output_dir={out}"]
    with pytest.raises(GenieError, match=problem):
        train(load_config(REPO / "configs" / "mner.yaml", [*settings, mistake.format(here=tmp_path)]))
    assert not (tmp_path / "runs").exists()


def test_a_refused_start_in_an_existing_folder_puts_back_what_was_there(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"config": {"task": "mre"}}))  # an older start's, alone
    before = (tmp_path / "run.json").read_bytes()
    folder = RunFolder(tmp_path)
    folder.lock()
    assert folder.claim(FINGERPRINT, resume=True, overwrite=False) == "new"
    assert (tmp_path / "run.json").read_bytes() != before
    folder.release()  # refused before writing anything of the run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"] and (tmp_path / "run.json").read_bytes() == before


def test_a_start_that_wrote_its_run_keeps_it(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.lock()
    folder.claim(FINGERPRINT, resume=True, overwrite=False)
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    folder.release()
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"run.json", "metrics.jsonl"}
