"""Experiment trackers (TensorBoard, Weights & Biases, ... through accelerate), beside the
run's own metrics.jsonl. A tracker whose package is missing is an error before the run starts:
accelerate would drop it without a word."""

from __future__ import annotations

from pathlib import Path

from accelerate.tracking import get_available_trackers
from accelerate.utils import ProjectConfiguration

from genie.config import GenieConfig
from genie.errors import GenieError
from genie.options import Tracker
from genie.training.run_folder import flatten

FOLDER = "tracking"  # in the run folder: TensorBoard's event files, under the run's name


def accelerator_kwargs(cfg: GenieConfig, out: Path) -> dict:
    """`log_with` and the project layout for the run's Accelerator."""
    report_to = cfg.train.report_to
    project = ProjectConfiguration(project_dir=str(out), logging_dir=str(out / FOLDER))
    if report_to == Tracker.NONE:
        return {"project_config": project}
    available = {str(tracker) for tracker in get_available_trackers()}
    if report_to == "all" and not available:
        raise GenieError("train.report_to=all, but no tracker package is installed (tensorboard comes with "
                         "`make install`)")
    if report_to != "all" and report_to not in available:
        raise GenieError(f"train.report_to={report_to} needs the {report_to} package, which is not installed "
                         f"(pip install {report_to})")
    return {"log_with": report_to, "project_config": project}


def tracked_config(cfg: GenieConfig) -> dict:
    """The config as flat scalars (what trackers store as hyperparameters)."""
    return {key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in flatten(cfg.to_dict()).items()}

