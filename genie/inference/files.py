"""`genie decode` (record files) and `genie predict` (raw posts): an `Extractor` over a file, in
chunks of `decode.chunk_size` inputs, so memory stays bounded whatever the file's size. Every line
is checked first (a bad one stops the run before anything is decoded), then each chunk is read,
decoded and appended in input order to `<output>.partial`, and journaled (`OutputJournal`):
killed, the same command resumes after its last finished chunk, each input written once, and the
output takes its final name once every input has its prediction."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from tqdm.auto import tqdm

from genie.errors import GenieError
from genie.inference.extractor import Extractor
from genie.inference.journal import OutputJournal, input_key
from genie.inference.posts import RegionIds, image_key, iter_posts, post_prediction
from genie.instructions import iter_examples
from genie.options import OnBadLine
from genie.records import BadLines, checked_row
from genie.regions.source import FeatureSource


def decode_file(checkpoint: Path, input_path: Path, output_path: Path, features_dir: str | None = None,
                overrides: list[str] = (), on_bad_line: str = "error") -> dict:
    """A trained checkpoint + record (or instruction) JSONL -> prediction JSONL. A multi-task model
    decodes each task's records with that task's parser. With `on_bad_line="skip"`, input lines
    that are not records are counted and left out."""
    refuse_to_overwrite(input_path, output_path)
    extractor = Extractor.from_pretrained(checkpoint, overrides=overrides)
    extractor.cli = True
    bad_lines = BadLines() if on_bad_line == OnBadLine.SKIP else None
    total = sum(1 for _ in iter_examples(input_path, bad_lines))
    out = Journaled(extractor, input_path, output_path, total,
                    [*overrides, f"features={features_dir}", f"on_bad_line={on_bad_line}"], "record")
    sources: dict[str, FeatureSource] = {}  # per task, one for the whole file: its report counts every image
    for chunk in out.chunks(iter_examples(input_path, BadLines() if bad_lines else None)):
        records = [record for record, _ in chunk]
        for name in dict.fromkeys(r.task for r in records):
            sources.setdefault(name, extractor.task_source(name, features_dir))
        predictions, counts, _ = extractor.decode(records, [i for _, i in chunk] if chunk[0][1] is not None else None,
                                                  sources)
        out.add([checked_row(p, output_path, out.done + k + 1) for k, p in enumerate(predictions)], counts)
    out.close()
    reports = {name: source.report() for name, source in sources.items()}
    return {"output": str(output_path), "records": total, **out.stats, **out.firsts,
            "features": next(iter(reports.values())) if len(reports) == 1 else reports,
            **(bad_lines.report() if bad_lines else {}), **out.report()}


def predict_file(checkpoint: Path, input_path: Path, output_path: Path, images: Path | None = None,
                 detector: str | None = None, revision: str | None = None, features: str | None = None,
                 task: str | None = None, overrides: list[str] = (), on_bad_line: str = "error",
                 batch_size: int | None = None, input_format: str = "auto") -> dict:
    """Raw posts (`genie.inference.posts`, each line read by `input_format`) -> prediction JSONL with
    character offsets. Regions come from `features`, or are extracted from the posts' images into
    `<output>.regions/` (kept: a rerun with the same detector reuses them) by `detector` or the
    checkpoint's own, chunk by chunk."""
    refuse_to_overwrite(input_path, output_path)
    extractor = Extractor.from_pretrained(checkpoint, overrides=overrides)
    extractor.cli = True
    bad_lines = BadLines() if on_bad_line == OnBadLine.SKIP else None
    lines: Counter = Counter()
    total = sum(1 for _ in iter_posts(input_path, bad_lines, input_format, counts=lines))
    out = Journaled(extractor, input_path, output_path, total,
                    [*overrides, f"images={images}", f"detector={detector}@{revision}", f"features={features}",
                     f"task={task}", f"on_bad_line={on_bad_line}", f"input_format={input_format}"], "post")
    scratch = output_path.with_name(output_path.name + ".regions")
    region_id = RegionIds()  # one numbering of image files for the whole file, a resumed run's too
    by_id, folder = features is not None, Path(images) if images is not None else None
    reading: FeatureSource | None = None  # the sources that read images, merged: the report covers them all

    def skipped(post) -> None:
        image_key(post, folder, by_id, region_id)

    for chunk in out.chunks(iter_posts(input_path, BadLines() if bad_lines else None, input_format), skipped):
        run = extractor.prepare_posts(chunk, task, images, features, region_id)
        source = extractor.regions(run, scratch, detector, features, revision=revision)
        predictions, counts, _ = extractor.decode(run.records, features=source, batch_size=batch_size)
        if any(record.image_id for record in run.records):
            if reading is None:
                reading = source
            else:
                reading.merge(source.seen, source.missing)
        report = run.report()
        counts.update({k: v for k, v in report.items() if isinstance(v, int)})  # update keeps the zeros
        out.add([post_prediction(post, record) for post, record in zip(chunk, predictions)], counts,
                {k: v for k, v in report.items() if isinstance(v, str)})
    out.close()
    summary = {"without_image": 0, "missing_images": 0, "bad_images": 0, **out.stats, **out.firsts, "posts": total}
    return {"output": str(output_path), **summary,
            "features": reading.report() if reading else "region features: none (no post's image to read)",
            "blank_lines": lines["blank_lines"], **({"regions": str(scratch)} if scratch.is_dir() else {}),
            **(bad_lines.report() if bad_lines else {}), **out.report()}


def refuse_to_overwrite(input_path: Path, output_path: Path) -> None:
    """An output that is the input (itself, through a link, or a hard link to it) would replace
    the inputs with predictions: refused before anything is read or written."""
    same = output_path.resolve() == input_path.resolve()
    if same or (output_path.exists() and input_path.exists() and output_path.samefile(input_path)):
        raise GenieError(f"the output is the input file {input_path}: writing predictions there would replace "
                         f"it; name another output file", output_path)


class Journaled:
    """The output of `total` inputs, written chunk by chunk through the journal: what an earlier
    run of the same command finished is kept, and its counts carried on (`stats`, `firsts`)."""

    def __init__(self, extractor: Extractor, input_path: Path, output_path: Path, total: int, settings: list[str],
                 unit: str):
        self.output, self.total, self.unit = output_path, total, unit
        self.is_main = extractor.accelerator.is_main_process
        self.chunk_size = extractor.cfg.decode.chunk_size
        self.journal = OutputJournal(output_path, input_key(input_path, extractor.checkpoint, settings),
                                     write=self.is_main)
        self.done, self.stats, self.firsts = self.journal.resume()
        self.resumed_with = self.done
        extractor.accelerator.wait_for_everyone()  # every process has read it before the main one writes
        self.journal.start()
        self.started = time.perf_counter()

    def chunks(self, inputs: Iterable, skipped=None) -> Iterator[list]:
        """The inputs not done yet, `decode.chunk_size` at a time, with a progress bar over the
        whole file; `skipped` sees each input done before (a resumed run)."""
        inputs = iter(inputs)
        for item in islice(inputs, self.done):
            if skipped is not None:
                skipped(item)
        with tqdm(total=self.total, initial=self.done, unit=self.unit, desc=f"{self.unit}s",
                  disable=not self.is_main) as bar:
            while chunk := list(islice(inputs, self.chunk_size)):
                yield chunk
                bar.update(len(chunk))

    def add(self, rows: list[dict], counts: Counter, firsts: dict | None = None) -> None:
        """A chunk's output rows (in input order) and counts, appended and journaled."""
        self.done += len(rows)
        self.stats.update(counts)
        for key, value in (firsts or {}).items():
            self.firsts.setdefault(key, value)
        self.journal.add(rows, self.done, self.stats, self.firsts)

    def close(self) -> None:
        """Every input has its prediction: the output takes its name."""
        if self.done != self.total:
            raise GenieError(f"the input changed while it was read ({self.done} of {self.total} inputs)",
                             self.output)
        self.journal.finish(self.output)

    def report(self) -> dict:
        seconds = time.perf_counter() - self.started
        decoded = self.done - self.resumed_with
        return {**({"resumed_with": self.resumed_with} if self.resumed_with else {}), "seconds": round(seconds, 2),
                "records_per_second": round(decoded / max(seconds, 1e-9), 1)}
