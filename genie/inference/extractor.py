"""The Python API: a trained checkpoint that turns posts (text and an image) into records.

```python
from genie import Extractor
extractor = Extractor.from_pretrained("runs/gmner/best")
records = extractor.predict([{"text": "Obama visits Paris", "image": "photo.jpg"}], batch_size=32)
records.summary  # what `genie predict` prints: posts, images not found or bad, the parser's counts, ...
```

`genie decode` and `genie predict` are this class plus a resumable journal and files: one
path from checkpoint to records, whichever way a user comes in.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from accelerate import Accelerator
from transformers import AutoTokenizer

from genie.config import GenieConfig, load_config
from genie.errors import GenieError
from genie.inference.decode import decode_loader, predict
from genie.inference.posts import Post, PostRun, RegionIds, parse_line, post_prediction, post_records
from genie.options import InputFormat, check
from genie.records import Record
from genie.regions.extract import extract_regions
from genie.regions.manifest import ORIGINS, describe, read_manifest
from genie.regions.source import FeatureSource
from genie.tasks import Task
from genie.training.precision import make_accelerator
from genie.training.run_setup import (
    feature_source,
    instructions_for,
    load_checkpoint,
    run_tasks,
    task_datasets,
    task_features_dir,
    with_saved_labels,
)

DEVICES = (None, "cpu", "cuda")
EXTRACT_BATCH = 8  # images per detector call when predicting
logger = logging.getLogger(__name__)


def model_folder(path: Path) -> Path:
    """The trained model in `path`: a run folder's best/, or the folder itself."""
    if (path / "best" / "genie.yaml").is_file():
        return path / "best"
    if (path / "genie.yaml").is_file() and not (path / "checkpoints").is_dir():
        return path
    raise GenieError("not a genie checkpoint, nor a run folder with a best/ one (a run writes best/ at its "
                     "first dev evaluation)", path)


class Predictions(list):
    """`Extractor.predict`'s records, one per post in order, and `summary`: the counts `genie predict`
    prints (posts, posts without an image, images not found, bad images, the parser's counts, the
    feature report), so a post predicted without its image is never silent."""

    def __init__(self, records: list[dict], summary: dict):
        super().__init__(records)
        self.summary = summary


class Extractor:
    """A checkpoint's model, tokenizer, config and tasks, on a device, ready to decode records
    or predict raw posts. Under `accelerate launch` each process decodes its share."""

    def __init__(self, checkpoint: Path, cfg: GenieConfig, tokenizer, model, accelerator: Accelerator):
        self.checkpoint, self.cfg, self.tokenizer = checkpoint, cfg, tokenizer
        self.accelerator = accelerator
        self.model = accelerator.prepare(model)
        self.tasks = {task.name: task for task in with_saved_labels(run_tasks(cfg), checkpoint)}
        self._detectors: dict[str, object] = {}
        self.cli = False  # messages name options as keyword arguments; genie's commands set this to name flags

    def option(self, name: str, value: str) -> str:
        """An option as a message names it: `--detector X` to the CLI's user, `detector=X` to the API's."""
        return f"--{name.replace('_', '-')} {value}" if self.cli else f"{name}={value}"

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, overrides: Iterable[str] = ()) -> Extractor:
        """A checkpoint folder (a run's `best/`) or a run folder; `device`: "cpu", "cuda" or
        None (accelerate's choice); `overrides`: `key=value` config changes such as
        `decode.num_beams=4`."""
        if device not in DEVICES:
            raise GenieError(f"device must be cpu or cuda, got {device!r}")
        checkpoint = model_folder(Path(path))
        cfg = load_config(checkpoint / "genie.yaml", list(overrides))
        accelerator = make_accelerator(cfg.train.mixed_precision, cpu=device == "cpu")
        if device == "cuda" and accelerator.device.type != "cuda":
            raise GenieError("device cuda asked for, but no CUDA device is available")
        tasks = run_tasks(cfg)
        model = load_checkpoint(checkpoint, cfg, tasks[0])
        return cls(checkpoint, cfg, AutoTokenizer.from_pretrained(checkpoint), model, accelerator)

    @property
    def origins(self) -> dict[str, dict | None]:
        """Per task, the `extraction.json` of the regions it was trained on (None: unknown)."""
        path = self.checkpoint / ORIGINS
        saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        return {name: saved.get(name) for name in self.tasks}

    # -- records -------------------------------------------------------------------------------

    def decode(self, records: list[Record], given: list[str] | None = None,
               features: str | Path | FeatureSource | Mapping[str, FeatureSource] | None = None,
               batch_size: int | None = None) -> tuple[list[Record], Counter, dict[str, str]]:
        """Predictions for `records` in their order, parser counts, and each task's feature report.
        `features`: a region folder or store (`{task}` in it stands for each task's name), a
        source, or a source per task (`task_source`; default: each task's training folder);
        `batch_size` defaults to the checkpoint's `decode.batch_size`."""
        if batch_size is not None and batch_size < 1:
            raise GenieError(f"batch size must be positive, got {batch_size}")
        unknown = sorted({r.task for r in records} - set(self.tasks))
        if unknown:
            raise GenieError(f"records for task {unknown[0]}, which this model was not trained on "
                             f"({', '.join(self.tasks)})")
        predictions: list[Record | None] = [None] * len(records)
        counts: Counter = Counter()
        reports = {}
        for name in dict.fromkeys(r.task for r in records):
            rows = [i for i, r in enumerate(records) if r.task == name]
            source = features[name] if isinstance(features, Mapping) else self.task_source(name, features)
            preds, task_counts = self._decode_task(
                self.tasks[name], [records[i] for i in rows], [given[i] for i in rows] if given else None, source,
                batch_size or self.cfg.decode.batch_size)
            for i, pred in zip(rows, preds):
                predictions[i] = pred
            counts.update(task_counts)
            reports[name] = source.report()
        return predictions, counts, reports

    def task_source(self, task: str, features: str | Path | FeatureSource | None) -> FeatureSource:
        """The regions `task`'s records are decoded with (`decode`'s `features`)."""
        if isinstance(features, FeatureSource):
            return features
        cfg = self.cfg if features is None else replace(self.cfg, features=replace(self.cfg.features, dir=str(features)))
        return feature_source(cfg, task_features_dir(cfg, self.tasks[task]))

    def _decode_task(self, task: Task, records: list[Record], given: list[str] | None, features: FeatureSource,
                     batch_size: int) -> tuple[list[Record], Counter]:
        cfg = self.cfg
        features.check(r.image_id for r in records)
        dataset = task_datasets(cfg, task, self.tokenizer, features,
                                {"decode": (records, instructions_for(cfg, task, records, given))})["decode"]
        dataset.targets.context_report(records, dataset.instructions)  # refuses a tokenizer that cannot write the marker
        loader = self.accelerator.prepare(decode_loader(dataset, batch_size))
        return predict(self.accelerator, self.model, dataset, loader, cfg.decode, desc=f"decode {task.name}")

    # -- raw posts -----------------------------------------------------------------------------

    def predict(self, posts: Iterable[dict | str | Post], batch_size: int | None = None, task: str | None = None,
                images: str | Path | None = None, detector: str | Path | None = None, revision: str | None = None,
                features: str | Path | None = None, input_format: str = "auto") -> Predictions:
        """Prediction records (entities with type, boxes and character offsets into the text;
        relations) for raw posts: `{"text", "image"?, "id"?}` dicts, or strings read as a line of a
        posts file is (`input_format`: auto, jsonl or text); a post's id defaults to its position,
        counting from 1, as a file's line number does. An image is a path, or a name inside
        `images`; its regions come from `detector` (default: the one the checkpoint was trained
        with; `revision`: of a Hub detector) unless `features` names a region folder or store.
        The result's `summary` counts what `genie predict` counts."""
        posts = self.parse_posts(posts, input_format)
        run = self.prepare_posts(posts, task, images, features)
        with tempfile.TemporaryDirectory(prefix="genie-regions-") as scratch:
            source = self.regions(run, Path(scratch), detector, features, revision=revision)
            predictions, counts, reports = self.decode(run.records, features=source, batch_size=batch_size)
        return Predictions([post_prediction(post, record) for post, record in zip(posts, predictions)],
                           run.summary(dict(counts), reports.get(run.task)))

    def parse_posts(self, posts: Iterable[dict | str | Post], input_format: str = "auto") -> list[Post]:
        """The API's posts as `Post`s, numbered from 1; a bad one, or an id used twice, is a GenieError."""
        check(InputFormat, input_format, "input_format")
        parsed: list[Post] = []
        first: dict[str, int] = {}
        for k, post in enumerate(posts, start=1):
            try:
                if isinstance(post, str):
                    post = parse_line(post, str(k), input_format, self.option("input_format", '"text"'))
                elif not isinstance(post, Post):
                    post = Post.parse(post, str(k))
            except ValueError as exc:
                raise GenieError(f"post {k}: not a post: {exc}") from None
            if post.id in first:
                raise GenieError(f"post {k}: post id {post.id!r} is used twice (first by post {first[post.id]})")
            first[post.id] = k
            parsed.append(post)
        return parsed

    def prepare_posts(self, posts: list[Post], task: str | None, images: str | Path | None,
                      features: str | Path | None, region_id: RegionIds | None = None) -> PostRun:
        """Posts as records of the task to predict, with their images resolved (`region_id`: the
        image numbering, kept across the chunks of one file)."""
        name = self._task_name(task)
        return post_records(posts, name, Path(images) if images is not None else None, by_id=features is not None,
                            region_id=region_id)

    def regions(self, run: PostRun, scratch: Path, detector: str | Path | None, features: str | Path | None,
                revision: str | None = None) -> FeatureSource:
        """The posts' regions: from `features`, or extracted into `scratch` with the detector (one
        named is loaded even when no image needs it: a wrong name is never silent); posts without
        an image (or whose image is missing or bad) get none, counted and warned of."""
        task = self.tasks[run.task]
        origin = self.origins[run.task]
        if features is not None and detector is not None:
            raise GenieError(f"{self.option('features', str(features))} names regions already extracted: "
                             f"{self.option('detector', str(detector))} would not be used; pass one of them")
        if features is not None:
            _warn_if_other(origin, read_manifest(features), f"the regions in {features}")
            source = self._source(features)
            run.without_regions(source.has, missing=True)
        elif self.cfg.features.zero or task_features_dir(self.cfg, task) is None:
            if detector is not None:
                logger.warning("this model reads no regions (text-only): the detector %s is not used", detector)
            source = self._source(None)
        elif run.jobs:
            if self.accelerator.num_processes > 1:  # each would extract every image into one folder
                raise GenieError(f"{self.accelerator.num_processes} processes would each extract regions from "
                                 f"every image into {scratch}: extract them first (genie features extract) and pass "
                                 "--features", scratch)
            extract_regions(run.jobs, scratch, self._detector(detector, revision, origin), batch_size=EXTRACT_BATCH)
            source = self._source(scratch)
            run.without_regions(source.has, missing=False)
        else:  # no post's image was found: no regions to make
            if detector is not None:
                self._detector(detector, revision, origin)
            source = self._source(None)
        if run.missing_images or run.bad_images:
            logger.warning("%d post(s) name an image not found, %d a bad one (first: %s): predicted from their "
                           "text alone", len(run.missing_images), len(run.bad_images),
                           (run.missing_images or run.bad_images)[0])
        return source

    def _source(self, directory) -> FeatureSource:
        return FeatureSource(directory, self.cfg.features.max_regions, self.cfg.features.dim, on_missing="zeros")

    def _detector(self, name: str | Path | None, revision: str | None, origin: dict | None):
        """The detector to extract with: `name` (at `revision`), else the one the checkpoint's regions
        came from, with that extraction's settings either way."""
        from genie.regions.detectors import load_detector

        made = (origin or {}).get("detector", {})
        if name is None:
            if "features" not in made:
                raise GenieError(f"the checkpoint was trained on {describe(origin)}, which no detector can remake: "
                                 f"pass {self.option('detector', 'NAME_OR_FOLDER')} "
                                 f"(or {self.option('features', 'FOLDER')}, regions already extracted)", self.checkpoint)
            name, revision = made["model"], made.get("revision")
        key = f"{name}@{revision}"
        if key not in self._detectors:
            self._detectors[key] = load_detector(name, features=made.get("features", "query"),
                                                 max_regions=made.get("max_regions", self.cfg.features.max_regions),
                                                 nms_iou=made.get("nms_iou"), prompt=made.get("prompt"),
                                                 device=str(self.accelerator.device), revision=revision)
        detector = self._detectors[key]
        _warn_if_other(origin, {"detector": detector.settings(), "dim": detector.dim}, "these regions")
        return detector

    def _task_name(self, task: str | None) -> str:
        if task is None:
            if len(self.tasks) > 1:
                raise GenieError(f"this model does {', '.join(self.tasks)}: say which task to predict "
                                 f"({self.option('task', 'NAME')})")
            task = next(iter(self.tasks))
        if task not in self.tasks:
            raise GenieError(f"this model was not trained on {task} ({', '.join(self.tasks)})")
        if self.tasks[task].given_entities:
            raise GenieError(f"{task} is given entities as input, which raw posts do not give: decode records "
                             f"with genie decode")
        return task


def _warn_if_other(trained: dict | None, used: dict | None, what: str) -> None:
    """Regions from another extractor than the training's work, but are not the same inputs."""
    keys = ("detector", "dim")
    if trained is None or used is None or {k: trained.get(k) for k in keys} != {k: used.get(k) for k in keys}:
        logger.warning("the checkpoint was trained on %s; %s are %s: predictions may be worse than measured",
                       describe(trained), what, describe(used))


