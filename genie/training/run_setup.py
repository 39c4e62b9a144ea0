"""What a run needs before the loop: the split records, the feature source, the tokenizer
and the model, built from a config (tiny from-scratch models or a real pretrained one)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from transformers import AutoTokenizer

from genie.config import GenieConfig, ModelConfig, RegularizersConfig
from genie.context import ContextUse
from genie.data import GenieDataset
from genie.demo import build_demo
from genie.errors import GenieError
from genie.instructions import read_examples
from genie.model.backbones import SIZES, check_lengths, size
from genie.model.modeling import (
    TINY_MODELS,
    GenieModel,
    add_lora,
    build_backbone,
    is_genie_checkpoint,
    load_pretrained,
)
from genie.model.sources import model_source
from genie.model.targets import make_targets, pointer_labels, source_text
from genie.model.tokenizer import train_bart_tokenizer, train_t5_tokenizer
from genie.options import OnBadLine, PeftMethod, TargetFormat
from genie.prompts import load_prompts
from genie.records import BadLines, Record
from genie.regions.source import FeatureSource
from genie.tasks import Task, get_task

SPLITS = ("train", "dev", "test")
LABELS = "labels.json"  # in a checkpoint: the labels of tasks that take them from their data
logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    """One task's part of a run: the records and instructions (None: plain sources) of each
    split, and its feature source."""

    task: Task
    records: dict[str, list[Record]]
    instructions: dict[str, list[str] | None]
    features: FeatureSource
    skipped: dict[str, dict] = field(default_factory=dict)  # per split, the bad lines left out


def run_tasks(cfg: GenieConfig) -> list[Task]:
    """The run's tasks, checked: no repeats, and index targets only for a single task."""
    names = cfg.tasks
    if not names or len(set(names)) != len(names):
        raise GenieError(f"task must name one task or a list of distinct tasks, got {cfg.task!r}")
    tasks = [get_task(name) for name in names]
    if len(tasks) > 1 and cfg.target_format != TargetFormat.TEXT:
        raise GenieError("multi-task runs use target_format=text: each task's index grammar has its own labels")
    for task in tasks:
        pointer_labels(cfg.target_format, task)
    return tasks


def save_labels(folder: Path, tasks: list[Task]) -> None:
    """A checkpoint's `labels.json`: the labels of its tasks that take them from the data."""
    labels = {task.name: list(task.labels) for task in tasks if task.labels_from_data}
    if labels:
        (folder / LABELS).write_text(json.dumps(labels, indent=2))


def with_saved_labels(tasks: list[Task], checkpoint: Path) -> list[Task]:
    """`tasks` over the labels `checkpoint` was trained with, for those that take them from the data."""
    if not any(task.labels_from_data for task in tasks):
        return tasks
    path = checkpoint / LABELS
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return [task.with_labels(saved[task.name]) if task.labels_from_data else task for task in tasks]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GenieError(f"the checkpoint's task labels are unreadable or missing ({exc!r}): "
                         f"it was not saved by this genie", path) from None


def check_model(cfg: GenieConfig) -> None:
    """`model.name` is a built-in tiny model, a local folder or a Hub name the Hub can be asked
    for: checked before a run folder exists (genie/model/sources.py has the rule)."""
    if cfg.model.name not in TINY_MODELS:
        model_source(cfg.model.name)


def demo_folder(cfg: GenieConfig, task_name: str) -> Path:
    """Where a task's demo is built: `<demo_dir>/<task>`, its context variant beside it."""
    return Path(cfg.data.demo_dir) / (f"{task_name}-context" if cfg.data.demo_context else task_name)


def with_demo_features(cfg: GenieConfig) -> GenieConfig:
    """With the demo and no feature folder: each task's demo features (saved for decode)."""
    if cfg.data.dir is None and cfg.features.dir is None:
        return replace(cfg, features=replace(cfg.features, dir=str(demo_folder(cfg, "{task}") / "features")))
    return cfg


def task_features_dir(cfg: GenieConfig, task: Task) -> str | None:
    directory = with_demo_features(cfg).features.dir
    return directory.replace("{task}", task.name) if directory else None


def load_task_data(cfg: GenieConfig, task: Task) -> TaskData:
    """A task's splits from `data.dir` (`data.dir/<task>/` in a multi-task run) or its demo,
    as record or instruction-format JSONL."""
    if cfg.data.dir is None:
        spec = task.demo.with_context() if cfg.data.demo_context else task.demo
        build_demo(demo_folder(cfg, task.name), spec, seed=cfg.data.demo_seed,
                   n_train=cfg.data.demo_train_tweets, feature_dim=cfg.features.dim,
                   noise_share=cfg.data.demo_noise_share)
    records, given, skipped = {}, {}, {}
    for split, path in split_files(cfg, task).items():
        bad_lines = BadLines() if cfg.data.on_bad_line == OnBadLine.SKIP else None
        records[split], given[split] = read_examples(path, bad_lines)
        if bad_lines and bad_lines.count:
            skipped[split] = {"file": str(path), **bad_lines.report()}
        wrong = {r.task for r in records[split]} - {task.name}
        if wrong:
            raise GenieError(f"{split} records are for task {sorted(wrong)}, this part of the run is {task.name}",
                             path)
    if task.labels_from_data:
        task = task.with_labels(task.labels_in(records["train"]))
        if not task.labels:
            raise GenieError(f"the train split names no {task.name} label: {task.name} takes its labels from it",
                             split_files(cfg, task)["train"])
    instructions = {split: instructions_for(cfg, task, records[split], given[split]) for split in SPLITS}
    features = feature_source(cfg, task_features_dir(cfg, task))
    features.check(r.image_id for split in SPLITS for r in records[split])
    return TaskData(task, records, instructions, features, skipped)


def split_files(cfg: GenieConfig, task: Task) -> dict[str, Path]:
    """A task's train / dev / test files: its demo's, or under `data.dir` (`data.dir/<task>/` in a
    multi-task run)."""
    if cfg.data.dir is None:
        data_dir = demo_folder(cfg, task.name)
    else:
        data_dir = Path(cfg.data.dir) / (task.name if len(cfg.tasks) > 1 else "")
    return {split: data_dir / getattr(cfg.data, split) for split in SPLITS}


def instructions_for(cfg: GenieConfig, task: Task, records: list[Record],
                     given: list[str] | None) -> list[str] | None:
    """With `prompts.use`: the file's own instructions, else a `prompts.set` paraphrase per record.
    Without, a multi-task run still names the task, "gmner:" (T5's task prefixes): a few tokens
    where an instruction is 40-250."""
    if not cfg.prompts.use:
        return [f"{task.name}:"] * len(records) if len(cfg.tasks) > 1 else None
    if given is not None:
        return given
    prompts = load_prompts(task, cfg.prompts.dir)
    return [prompts.instruction(record, cfg.prompts.set) for record in records]


def feature_source(cfg: GenieConfig, directory: str | None) -> FeatureSource:
    return FeatureSource(directory, cfg.features.max_regions, cfg.features.dim, cfg.features.on_missing)


def build_model(cfg: GenieConfig, parts: list[TaskData], tokenizer=None):
    """Tokenizer and GenieModel (with LoRA adapters when `peft.method` asks for them)."""
    tokenizer, model = _base_model(cfg, parts, tokenizer)
    if cfg.peft.method == PeftMethod.LORA:
        if cfg.model.name in TINY_MODELS:
            raise GenieError(f"peft.method=lora adapts a pretrained backbone; {cfg.model.name} is randomly "
                             "initialised (set model.name to a Hugging Face name or a local folder)")
        model = add_lora(model, cfg.peft)
    return tokenizer, model


def _base_model(cfg: GenieConfig, parts: list[TaskData], tokenizer=None):
    """Tiny models initialised here (with a tokenizer trained on the train splits unless one is
    given), or loaded from `model.name`."""
    name = cfg.model.name
    task = parts[0].task  # a multi-task run has text targets: no pointer head
    labels = pointer_labels(cfg.target_format, task)
    given = any(part.task.given_objects for part in parts)  # the regions of given objects are marked
    if name in TINY_MODELS:
        if tokenizer is None:
            texts, context = [], ContextUse.from_config(cfg.data)
            for part in parts:
                train, instructions = part.records["train"], part.instructions["train"]
                texts += [source_text(part.task, r, i, context)
                          for r, i in zip(train, instructions or [""] * len(train))]
                if not labels:  # index targets never reach the tokenizer
                    texts += [part.task.linearize(r).text for r in train]
            trainer = train_t5_tokenizer if name == "tiny-t5" else train_bart_tokenizer
            tokenizer = trainer(texts, cfg.model.vocab_size)
        backbone = build_backbone(cfg.model, tokenizer,
                                  max_positions=cfg.model.max_source_length + cfg.features.max_regions + 2)
        return tokenizer, GenieModel(backbone, cfg.features.dim, cfg.model.dropout, labels, cfg.regularizers, given)
    if is_genie_checkpoint(name):
        return AutoTokenizer.from_pretrained(name), load_checkpoint(name, cfg, task)
    tokenizer, backbone = load_pretrained(name)
    _warn_ignored_sizes(cfg, backbone.config)
    check_lengths(backbone.config, name, cfg.model.max_source_length, cfg.features.max_regions,
                  cfg.model.max_target_length)
    return tokenizer, GenieModel(backbone, cfg.features.dim, cfg.model.dropout, labels, cfg.regularizers, given)


def _warn_ignored_sizes(cfg: GenieConfig, config) -> None:
    """A pretrained backbone keeps its own sizes: say so when the config asks for other ones than
    the tiny model's defaults (those are every config's, and no request for a pretrained model)."""
    differ = []
    for key in SIZES:
        actual, asked = size(config, key), getattr(cfg.model, key)
        if actual is not None and actual != asked and asked != getattr(ModelConfig(), key):
            differ.append(f"model.{key}={asked} (it has {actual})")
    if differ:
        logger.warning("%s keeps its own sizes; ignored: %s", cfg.model.name, ", ".join(differ))


def load_checkpoint(directory: str | Path, cfg: GenieConfig, task: Task) -> GenieModel:
    """A saved GenieModel, checked to have the head `cfg.target_format` needs for `task`."""
    model = GenieModel.from_pretrained(directory)
    if model.pointer_labels != pointer_labels(cfg.target_format, task):
        raise GenieError(f"the checkpoint's output head does not fit {task.name} targets in the "
                         f"{cfg.target_format} format", directory)
    wanted = cfg.regularizers if cfg.regularizers.enabled else RegularizersConfig()
    if model.regularizer_config != wanted:
        raise GenieError(f"the checkpoint was trained with regularizers {asdict(model.regularizer_config)}; "
                         "set the same regularizers.* to continue from it", directory)
    return model


def task_datasets(cfg: GenieConfig, task: Task, tokenizer, features: FeatureSource,
                  splits: dict[str, tuple[list[Record], list[str] | None]]) -> dict[str, GenieDataset]:
    """A task's datasets, one per split (records and their instructions), over the run's target
    format: the same for training and for decoding a checkpoint, so both read records alike."""
    targets = make_targets(cfg.target_format, task, tokenizer, cfg.model.max_source_length,
                           cfg.model.max_target_length, ContextUse.from_config(cfg.data))
    targets.check_decoding(cfg.decode)
    return {split: GenieDataset(records, targets, features, cfg.features.zero, instructions)
            for split, (records, instructions) in splits.items()}

