"""A model, detector or encoder named by the user is a local folder or a Hub name, by one rule
(genie/model/sources.py): a mistyped path is one line at once, never a minute of Hub retries; with no
Hub to reach, a Hub name is one line within seconds, naming HF_HUB_OFFLINE and local folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from genie.config import load_config
from genie.errors import GenieError
from genie.model import sources
from genie.model.sources import model_source
from genie.model.warm_start import warm_start
from genie.regions.detectors import load_detector
from genie.training.run_setup import check_model

REPO = Path(__file__).resolve().parents[1]
CLOSED_PORT = "http://127.0.0.1:9"  # nothing listens on the discard port: refused at once, like no network


@pytest.fixture
def no_hub(monkeypatch):
    """Online mode, with the Hub's endpoint where nothing answers."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", CLOSED_PORT)
    probe = sources.hub_unreachable  # a test may replace it
    probe.cache_clear()
    yield
    probe.cache_clear()


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working folder holding the folders documented commands make (backbones/, detectors/)."""
    for folder in ("backbones", "detectors"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", ["backbones/minilm-bert2bret", "detectors/tiny-detrr", "./model", "../model",
                                  "/no/such/model", "~/model", "runs/x/best", "my model"])
def test_a_path_like_name_that_does_not_exist_is_no_such_local_folder(here, no_hub, monkeypatch, name):
    monkeypatch.setattr(sources, "hub_unreachable", lambda endpoint: pytest.fail("asked the Hub for a path"))
    with pytest.raises(GenieError, match="no such local folder") as error:
        model_source(name)
    assert str(error.value).startswith(f"{name}: ")


def test_an_existing_folder_and_hub_names_pass(here, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(sources, "hub_unreachable", lambda endpoint: None)
    (here / "backbones" / "minilm-bert2bert").mkdir()
    for name in ("backbones/minilm-bert2bert", "google/flan-t5-base", "t5-small"):
        assert model_source(name) == name


def test_a_hub_name_with_no_hub_to_reach_is_one_line_within_seconds(here, no_hub):
    started = time.monotonic()
    with pytest.raises(GenieError) as error:
        model_source("google/flan-t5-base")
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "HF_HUB_OFFLINE" in message and "local save_pretrained folder" in message and CLOSED_PORT in message


def test_offline_mode_leaves_hub_names_to_the_local_cache(here, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(sources, "hub_unreachable", lambda endpoint: pytest.fail("asked the Hub while offline"))
    assert model_source("google/flan-t5-base") == "google/flan-t5-base"


def test_built_in_models_need_no_folder_nor_hub(here, no_hub, monkeypatch):
    monkeypatch.setattr(sources, "hub_unreachable", lambda endpoint: pytest.fail("asked the Hub for a tiny model"))
    for name in ("tiny-t5", "tiny-bart"):
        check_model(load_config(REPO / "configs" / "mner.yaml", [f"model.name={name}"]))
    with pytest.raises(GenieError, match="no such local folder"):
        check_model(load_config(REPO / "configs" / "mner.yaml", ["model.name=backbones/typo"]))


def test_a_mistyped_detector_or_encoder_is_one_line(here, no_hub):
    with pytest.raises(GenieError, match="^detectors/tiny-detrr: no such local folder"):
        load_detector("detectors/tiny-detrr")
    with pytest.raises(GenieError, match="^backbones/bert: no such local folder .*\\./backbones is a folder"):
        warm_start("backbones/bert", here / "out")
    with pytest.raises(GenieError, match="the encoder 'someone/bert' is not a local folder.*HF_HUB_OFFLINE"):
        warm_start("someone/bert", here / "out")


def test_genie_train_with_a_mistyped_model_or_no_hub_stops_in_one_line(here):
    """As a user meets it: `make train MODEL=...` runs this command (run folder: nothing made)."""
    env = {**os.environ, "HF_ENDPOINT": CLOSED_PORT, "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    for model, problem in (("backbones/minilm-bert2bret", "backbones/minilm-bert2bret: no such local folder"),
                           ("someone/model", "set HF_HUB_OFFLINE=1")):
        run = subprocess.run([sys.executable, "-m", "genie.cli", "train", "--config", str(REPO / "configs/mner.yaml"),
                              f"model.name={model}", "train.output_dir=runs/typo"],
                             capture_output=True, text=True, env=env, cwd=here)
        assert run.returncode == 2 and run.stderr.startswith("genie: error: "), run.stderr
        assert run.stderr.count("\n") == 1 and problem in run.stderr, run.stderr
        assert not (here / "runs").exists()
