"""`metrics.jsonl` in the run folder: one line per optimizer step (its loss terms, the mean over
the step's batches and processes, and the learning rate) and one per dev evaluation.

Written by the main process, a flushed line at a time. A resumed run first drops the lines past
its checkpoint (steps it is about to train again), so the file reads as one uninterrupted run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from genie.io import atomic_write

FILE = "metrics.jsonl"


class MetricsLog:
    """`track(values, step)`: also hands each line's numbers to the experiment trackers."""

    def __init__(self, run_dir: Path, enabled: bool, track: Callable[[dict, int], None] | None = None):
        self.path = run_dir / FILE
        self.enabled = enabled
        self.track = track

    def resume(self, step: int) -> None:
        """Keep the lines up to `step` (the checkpoint resumed from); a torn last line goes too."""
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        with atomic_write(self.path) as handle:
            handle.write("".join(f"{line}\n" for line in kept))

    def start(self) -> None:
        """A new run: an empty file (a run folder claimed with overwrite may hold an old one)."""
        if self.enabled:
            self.path.write_text("", encoding="utf-8")

    def write(self, **fields) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(fields) + "\n")
        if self.track is not None:  # every process calls it; accelerate logs on the main one
            values = {key: value for key, value in fields.items() if key not in ("step", "dev")}
            values.update({f"dev/{task}": f1 for task, f1 in fields.get("dev", {}).items()})
            self.track(values, fields["step"])
