"""Instruction-format JSONL: `{"task", "instruction", "input", "image_id", "output", "record"}`
per line. `input` is the text the model reads after the instruction (with MRE's entity
markers, and the record's context after the tweet as `genie/context.py` writes it), `output`
the target in the chosen format (a string, or index lists for `index`), and `record` the
structured gold, so the file trains genie and reads in any instruction-tuning tool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from genie.context import context_suffix
from genie.options import TargetFormat
from genie.prompts import Prompts
from genie.records import BadLines, Record, iter_lines
from genie.tasks import get_task

KEYS = ("task", "instruction", "input", "image_id", "output", "record")


def instruction_line(record: Record, prompts: Prompts, which: str, target_format: str) -> dict:
    task = get_task(record.task)
    if target_format == TargetFormat.INDEX:
        output = task.index_format.linearize(record, [e.groundable for e in record.entities]).indices
    else:
        output = task.linearize(record).text
    return {"task": record.task, "instruction": prompts.instruction(record, which),
            "input": task.source_text(record) + context_suffix(record.context), "image_id": record.image_id,
            "output": output, "record": record.to_dict()}


def read_examples(path: str | Path, bad_lines: BadLines | None = None) -> tuple[list[Record], list[str] | None]:
    """Records of a record or instruction-format JSONL file, and the instructions (None for
    plain records). With `bad_lines`, bad lines are counted there and skipped."""
    rows = list(iter_examples(path, bad_lines))
    return [record for record, _ in rows], ([i for _, i in rows] if rows and rows[0][1] is not None else None)


def iter_examples(path: str | Path, bad_lines: BadLines | None = None) -> Iterator[tuple[Record, str | None]]:
    """(record, instruction or None) for each example of a record or instruction-format JSONL
    file, as it is read. A file mixing the two formats is an error at the first line that differs."""
    kind: list[bool] = []  # the file's format, set by its first example

    def parse(data: object) -> tuple[Record, str | None]:
        is_instruction = isinstance(data, dict) and "instruction" in data
        if kind and is_instruction != kind[0]:
            raise ValueError("mixes instruction-format and plain record lines")
        if not is_instruction:
            record = Record.from_dict(data)
            kind[:] = [False]
            return record, None
        missing = [k for k in KEYS if k not in data]
        if missing:
            raise ValueError(f"instruction line is missing {', '.join(missing)}")
        if not isinstance(data["instruction"], str):
            raise ValueError("'instruction' must be a string")
        record = Record.from_dict(data["record"])
        if record.task != data["task"]:
            raise ValueError(f"task {data['task']!r} differs from its record's {record.task!r}")
        kind[:] = [True]
        return record, data["instruction"]

    return (row for _, row in iter_lines(path, parse, bad_lines) if row is not None)
