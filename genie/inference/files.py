"""`genie decode` (record files) and `genie predict` (raw posts): an `Extractor` over a file,
resumable. Killed, the same command continues from `<output>.partial` (`DecodeJournal`), and the
output is written atomically, in input order, once every input has its prediction."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from genie.errors import GenieError
from genie.inference.extractor import Extractor
from genie.inference.journal import DecodeJournal, input_key
from genie.inference.posts import post_prediction, read_posts
from genie.instructions import read_examples
from genie.options import OnBadLine
from genie.records import BadLines, Record, write_lines, write_records


def decode_file(checkpoint: Path, input_path: Path, output_path: Path, features_dir: str | None = None,
                overrides: list[str] = (), on_bad_line: str = "error") -> dict:
    """A trained checkpoint + record (or instruction) JSONL -> prediction JSONL. A multi-task model
    decodes each task's records with that task's parser. With `on_bad_line="skip"`, input lines
    that are not records are counted and left out."""
    refuse_to_overwrite(input_path, output_path)
    extractor = Extractor.from_pretrained(checkpoint, overrides=overrides)
    extractor.cli = True
    bad_lines = BadLines() if on_bad_line == OnBadLine.SKIP else None
    records, given = read_examples(input_path, bad_lines)
    out = Journaled(extractor, input_path, output_path, len(records),
                    [*overrides, f"features={features_dir}", f"on_bad_line={on_bad_line}"])
    todo = out.todo()
    preds, counts, reports = extractor.decode([records[i] for i in todo], [given[i] for i in todo] if given else None,
                                              features_dir, out.on_batch(todo))
    out.finish(todo, preds, counts)
    if extractor.accelerator.is_main_process:
        write_records(output_path, out.predictions)
    out.close()
    return {"output": str(output_path), "records": len(records), **out.stats,
            "features": next(iter(reports.values())) if len(reports) == 1 else reports,
            **(bad_lines.report() if bad_lines else {}), **out.report()}


def predict_file(checkpoint: Path, input_path: Path, output_path: Path, images: Path | None = None,
                 detector: str | None = None, revision: str | None = None, features: str | None = None,
                 task: str | None = None, overrides: list[str] = (), on_bad_line: str = "error",
                 batch_size: int | None = None, input_format: str = "auto") -> dict:
    """Raw posts (`genie.inference.posts`, each line read by `input_format`) -> prediction JSONL with
    character offsets. Regions come from `features`, or are extracted from the posts' images into
    `<output>.regions/` (kept: a rerun with the same detector reuses them) by `detector` or the
    checkpoint's own."""
    refuse_to_overwrite(input_path, output_path)
    extractor = Extractor.from_pretrained(checkpoint, overrides=overrides)
    extractor.cli = True
    bad_lines = BadLines() if on_bad_line == OnBadLine.SKIP else None
    posts, blank_lines = read_posts(input_path, bad_lines, input_format)
    out = Journaled(extractor, input_path, output_path, len(posts),
                    [*overrides, f"images={images}", f"detector={detector}@{revision}", f"features={features}",
                     f"task={task}", f"on_bad_line={on_bad_line}", f"input_format={input_format}"])
    todo = out.todo()
    run = extractor.prepare_posts([posts[i] for i in todo], task, images, features)
    scratch = output_path.with_name(output_path.name + ".regions")
    source = extractor.regions(run, scratch, detector, features, revision=revision)
    preds, counts, reports = extractor.decode(run.records, features=source, on_batch=out.on_batch(todo),
                                              batch_size=batch_size)
    out.finish(todo, preds, counts)
    if extractor.accelerator.is_main_process:
        write_lines(output_path, (post_prediction(post, record) for post, record in zip(posts, out.predictions)))
    out.close()
    return {"output": str(output_path), **run.summary(dict(out.stats), reports.get(run.task)), "posts": len(posts),
            "blank_lines": blank_lines, **({"regions": str(scratch)} if scratch.is_dir() else {}),
            **(bad_lines.report() if bad_lines else {}), **out.report()}


def refuse_to_overwrite(input_path: Path, output_path: Path) -> None:
    """An output that is the input (itself, through a link, or a hard link to it) would replace
    the inputs with predictions: refused before anything is read or written."""
    same = output_path.resolve() == input_path.resolve()
    if same or (output_path.exists() and input_path.exists() and output_path.samefile(input_path)):
        raise GenieError(f"the output is the input file {input_path}: writing predictions there would replace "
                         f"it; name another output file", output_path)


class Journaled:
    """Predictions for `n` inputs, those an earlier run of the same command finished read back
    from its journal; the rest are appended to it batch by batch, and it is removed at the end."""

    def __init__(self, extractor: Extractor, input_path: Path, output_path: Path, n: int, settings: list[str]):
        self.is_main = extractor.accelerator.is_main_process
        self.journal = DecodeJournal(output_path, input_key(input_path, extractor.checkpoint, settings),
                                     write=self.is_main)
        self.done = self.journal.done()
        extractor.accelerator.wait_for_everyone()  # every process has read it before the main one appends
        self.journal.start()
        self.predictions: list[Record | None] = [None] * n
        self.stats: Counter = Counter()
        for index, (record, counts) in self.done.items():
            self.predictions[index] = record
            self.stats.update(counts)
        self.started = time.perf_counter()

    def todo(self) -> list[int]:
        return [i for i in range(len(self.predictions)) if i not in self.done]

    def on_batch(self, todo: list[int]):
        """The journal writer for a decode of the inputs `todo` (in that order)."""
        return lambda got: self.journal.add([(todo[k], record, counts) for k, record, counts in got])

    def finish(self, todo: list[int], predictions: list[Record], counts: Counter) -> None:
        for i, prediction in zip(todo, predictions):
            self.predictions[i] = prediction
        self.stats.update(counts)

    def close(self) -> None:
        """After the output is written: the journal is no longer needed."""
        if self.is_main:
            self.journal.finish()

    def report(self) -> dict:
        seconds = time.perf_counter() - self.started
        decoded = len(self.predictions) - len(self.done)
        return {**({"resumed_with": len(self.done)} if self.done else {}), "seconds": round(seconds, 2),
                "records_per_second": round(decoded / max(seconds, 1e-9), 1)}
