"""A run's metrics.jsonl as the tests compare it (`from metrics_lines import logged`)."""

from __future__ import annotations

import json
from pathlib import Path


def logged(out: Path) -> list[dict]:
    """metrics.jsonl of the run folder `out`, without the examples per second (wall-clock time)."""
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in line.items() if key != "examples_per_second"} for line in lines]
