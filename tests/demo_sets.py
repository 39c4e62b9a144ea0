"""Small demos of several tasks, for the tests that need a few records of each (import as
`from demo_sets import small_demos`); each test module picks the sizes it needs."""

from __future__ import annotations

from pathlib import Path

from genie.demo import build_demo
from genie.tasks import TASKS


def small_demos(out: Path, names=tuple(TASKS), **sizes) -> Path:
    """Each named task's demo under `out/<task>`; `sizes`: build_demo's n_train, n_dev, n_test,
    feature_dim."""
    for name in names:
        build_demo(out / name, TASKS[name].demo, **sizes)
    return out
