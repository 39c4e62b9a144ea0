"""A resumable `genie decode` / `genie predict`: the output grows chunk by chunk under
`<output>.partial`, each chunk recorded in `<output>.journal` once its lines are on disk, so a
killed run continues after its last finished chunk, every input written exactly once, and the
output takes its final name only when every input has its prediction."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

from genie.errors import GenieError


def input_key(input_path: Path, checkpoint: Path, settings: list[str]) -> dict:
    """What a partial file must have been made from to be resumed: the same input bytes, the same
    checkpoint and the same settings."""
    digest = hashlib.sha256()
    with open(input_path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"input": str(input_path.resolve()), "input_sha256": digest.hexdigest(),
            "checkpoint": str(checkpoint.resolve()), "settings": list(settings)}


class OutputJournal:
    """`<output>.partial`: the output's lines so far, in input order. `<output>.journal`: a header
    line (the `input_key`), then one line per finished chunk: how many inputs are done, the
    partial file's size then, and the run's counts so far (`stats`, numbers; `firsts`, the first
    example of what was counted). A chunk's lines are synced before its journal line is, so the
    journal never names lines that are not there; lines after its last chunk are cut on resume."""

    def __init__(self, output: Path, key: dict, write: bool = True):
        self.partial = output.with_name(output.name + ".partial")
        self.path = output.with_name(output.name + ".journal")
        self.key = key
        self.write = write  # only the main process writes

    def resume(self) -> tuple[int, Counter, dict]:
        """(inputs done, stats, firsts) of an earlier run of this same command: nothing when there
        was none, or it was of another input, checkpoint or settings but had finished no chunk."""
        if not self.path.is_file():
            self._start_over()
            return 0, Counter(), {}
        content = self.path.read_bytes()
        complete = content.split(b"\n")[:-1]  # a line a kill cut off is not a finished chunk
        header = _json(complete[0]) if complete else None
        if header != self.key:
            if len(complete) > 1:
                raise GenieError(f"a partial run of another input, checkpoint or settings is here ({self.partial}); "
                                 f"delete both files or write to another --output", self.path)
            self._start_over()
            return 0, Counter(), {}
        if len(complete) == 1:
            self._cut(0)
            return 0, Counter(), {}
        last = _json(complete[-1])
        try:
            done, size, stats, firsts = last["inputs"], last["bytes"], Counter(last["stats"]), dict(last["firsts"])
        except (TypeError, KeyError):
            raise GenieError("corrupt line in a run's journal; delete it and its .partial file to start over",
                             self.path, len(complete)) from None
        if not self.partial.is_file() or self.partial.stat().st_size < size:
            raise GenieError(f"{self.partial} is shorter than its journal says; delete both files to start over",
                             self.path)
        self._cut(size)
        return done, stats, firsts

    def start(self) -> None:
        """The journal's header and an empty partial output (when there was no run to resume)."""
        if self.write and not self.path.is_file():
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self.partial.write_bytes(b"")
            _append(self.path, json.dumps(self.key) + "\n")

    def add(self, rows: list[dict], done: int, stats: Counter, firsts: dict) -> None:
        """A finished chunk: its output rows, then the journal line saying they are there."""
        if not self.write:
            return
        size = _append(self.partial, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        _append(self.path, json.dumps({"inputs": done, "bytes": size, "stats": stats, "firsts": firsts}) + "\n")

    def finish(self, output: Path) -> None:
        """Every input has its prediction: the partial output takes its name, the journal goes."""
        if self.write:
            os.replace(self.partial, output)
            self.path.unlink()

    def _start_over(self) -> None:
        if self.write:
            self.path.unlink(missing_ok=True)
            self.partial.unlink(missing_ok=True)

    def _cut(self, size: int) -> None:
        """The partial output back to the end of the last finished chunk, and the journal to its
        last whole line."""
        if self.write:
            if not self.partial.is_file():  # killed between the two files of `start`
                self.partial.write_bytes(b"")
            os.truncate(self.partial, size)
            content = self.path.read_bytes()
            os.truncate(self.path, content.rindex(b"\n") + 1)


def _append(path: Path, text: str) -> int:
    """Append `text`, synced; the file's size after it."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
        return os.fstat(handle.fileno()).st_size


def _json(line: bytes):
    try:
        return json.loads(line)
    except ValueError:
        return None
