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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Training tests first (longest first within a file): pytest-xdist then spreads them over
    the workers, instead of leaving one worker to finish a long run alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
