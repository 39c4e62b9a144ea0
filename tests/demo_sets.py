"""Small demos of several tasks, for the tests that need a few records of each (import as
`from demo_sets import small_demos`); each test module picks the sizes it needs."""

from __future__ import annotations

from pathlib import Path

from genie.config import load_config
from genie.demo import build_demo
from genie.tasks import TASKS


def small_demos(out: Path, names=tuple(TASKS), **sizes) -> Path:
    """Each named task's demo under `out/<task>`; `sizes`: build_demo's n_train, n_dev, n_test,
    feature_dim."""
    for name in names:
        build_demo(out / name, TASKS[name].demo, **sizes)
    return out


def task_config(name: str, overrides=()):
    """The config `make train TASK=<name>` trains with: configs/<name>.yaml, or, for a task that
    has none, the defaults with `task=<name>`."""
    path = Path("configs") / f"{name}.yaml"
    return load_config(path, overrides) if path.is_file() else load_config(None, [f"task={name}", *overrides])
