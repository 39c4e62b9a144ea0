"""A resumable `genie decode`: predictions are appended to `<output>.partial` batch by batch, so a
killed decode continues where it stopped, and the output is written (atomically) only when every
input has its prediction, each exactly once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from genie.errors import GenieError
from genie.records import Record


def input_key(input_path: Path, checkpoint: Path, settings: list[str]) -> dict:
    """What a partial file must have been made from to be resumed: the same input bytes, the same
    checkpoint and the same settings."""
    digest = hashlib.sha256()
    with open(input_path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"input": str(input_path.resolve()), "input_sha256": digest.hexdigest(),
            "checkpoint": str(checkpoint.resolve()), "settings": list(settings)}


class DecodeJournal:
    """`<output>.partial`: a header line (the `input_key`), then one line per finished input,
    `{"index", "record", "stats"}`, flushed and synced batch by batch."""

    def __init__(self, output: Path, key: dict, write: bool = True):
        self.path = output.with_name(output.name + ".partial")
        self.key = key
        self.write = write  # only the main process writes

    def done(self) -> dict[int, tuple[Record, dict]]:
        """The inputs an earlier run of this same decode finished (none when there was none)."""
        if not self.path.is_file():
            return {}
        content = self.path.read_bytes()
        *complete, torn = content.split(b"\n")  # torn: what a kill cut off mid-line (decoded again)
        if not complete:  # killed while writing the header
            if self.write:
                self.path.unlink()
            return {}
        try:
            header = json.loads(complete[0])
        except ValueError:
            header = None
        if header != self.key and len(complete) == 1 and not torn:  # nothing decoded yet: start over
            if self.write:
                self.path.unlink()
            return {}
        if header != self.key:
            raise GenieError("a partial decode of another input, checkpoint or settings is here; delete it "
                             "or write to another --output", self.path)
        finished = {}
        for lineno, line in enumerate(complete[1:], start=2):
            try:
                row = json.loads(line)
                finished[row["index"]] = (Record.from_dict(row["record"]), row["stats"])
            except (ValueError, KeyError, TypeError):
                raise GenieError("corrupt line in a partial decode; delete the file to start over",
                                 self.path, lineno) from None
        if torn and self.write:
            os.truncate(self.path, len(content) - len(torn))
        return finished

    def start(self) -> None:
        """A new partial file holding only the header (when there was none)."""
        if self.write and not self.path.is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(self.key) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def add(self, rows: list[tuple[int, Record, dict]]) -> None:
        if not self.write or not rows:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            for index, record, stats in rows:
                handle.write(json.dumps({"index": index, "record": record.to_dict(), "stats": stats},
                                        ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def finish(self) -> None:
        if self.write:
            self.path.unlink(missing_ok=True)
