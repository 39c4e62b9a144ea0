"""One error type for every user mistake, so the CLI can print it as one line."""

from __future__ import annotations

from pathlib import Path


class GenieError(Exception):
    """A problem with the user's input: printed as `genie: FILE:LINE: PROBLEM`, no traceback."""

    def __init__(self, problem: str, path: str | Path | None = None, line: int | None = None):
        self.problem = " ".join(problem.split())  # one line, whatever a library's message held
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or ""
        if self.path and self.line is not None:
            where = f"{self.path}:{self.line}"
        return f"{where}: {self.problem}" if where else self.problem
