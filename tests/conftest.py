"""Shared test fixtures: where the real public datasets live (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("GENIE_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture
def shared_datasets() -> Path:
    """The real releases in ../shared/datasets; tests using it skip in a user's clone."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(autouse=True)
def fresh_precision():
    """accelerate keeps one mixed precision per process: a test's bf16 run would otherwise make a
    later test's plain `Accelerator(cpu=True)` autocast too."""
    yield
    from genie.compat import forget_accelerator_precision

    forget_accelerator_precision()


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """The run `make train TASK=gmner` makes: (its metrics, its folder). Its tests form the xdist
    group "gmner_default_run", so it is trained once. Session-scoped: xdist may run other modules'
    tests between this group's tests, and a module-scoped fixture is then torn down and trained again."""
    from genie.config import load_config
    from genie.training.run import train

    out = tmp_path_factory.mktemp("default")  # the demo beside it: no other run can rebuild it meanwhile
    return train(load_config("configs/gmner.yaml", [f"train.output_dir={out}", f"data.demo_dir={out / 'demo'}"])), out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Training tests first (longest first within a file): pytest-xdist then spreads them over
    the workers, instead of leaving one worker to finish a long run alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
