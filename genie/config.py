"""Typed run configuration: dataclasses loaded from YAML, with `key=value` overrides.

Unknown keys and ill-typed values fail loudly, naming the file and the key, so a typo in a
config never silently trains with a default. The defaults are the demo settings every shipped
`configs/<task>.yaml` shares (those change only the schedule), so a task without a config file
trains its demo as the others do.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from genie.context import parse_selection
from genie.errors import GenieError
from genie.io import read_text
from genie.options import (
    Alignment,
    OnBadLine,
    OnMissing,
    OnNonfinite,
    PeftMethod,
    Precision,
    PromptSet,
    Sampling,
    TargetFormat,
    Tracker,
    words,
)

SCHEMA = 1  # bump, with a MIGRATIONS entry, when a config key is renamed or moved
# MIGRATIONS[n] turns a schema-n config mapping (an old checkpoint's genie.yaml) into schema n + 1,
# so checkpoints written before a rename still decode.
MIGRATIONS: dict[int, typing.Callable[[dict], dict]] = {}


def bounded(default: float, low: float | None = None, high: float | None = None, *, above: bool = False,
            below: bool = False):
    """A number that must lie in [low, high] (`above`: > low, `below`: < high), checked on load."""
    return field(default=default, metadata={"low": low, "high": high, "above": above, "below": below})


def choice(default: StrEnum):
    """A string that must be one of the words of `default`'s options (`genie.options`), checked on load."""
    return field(default=default.value, metadata={"choices": words(type(default))})


@dataclass
class DataConfig:
    """Where the records come from. No `dir`: the embedded synthetic demo is built and used."""

    dir: str | None = None
    train: str = "train.jsonl"
    dev: str = "dev.jsonl"
    test: str = "test.jsonl"
    demo_dir: str = "demo_data"
    demo_seed: int = 0
    demo_train_tweets: int = bounded(6000, 1)  # dev and test stay at 300 tweets each
    demo_noise_share: float = bounded(0.0, 0.0, 1.0)  # a share of posts whose image is unrelated noise
    # The entity demos' context variant (`<task>-context/`): some names of a post are ambiguous,
    # and only a context sentence tells their type (docs/context.md).
    demo_context: bool = False
    # Which of a record's `context` entries the model reads after the tweet: all, none, or a
    # comma-separated list of sources ("caption,llm"); at most `max_context_tokens` of them, and
    # never more than what `model.max_source_length` leaves after the tweet.
    context: str = "all"
    max_context_tokens: int = bounded(64, 0)
    # Multi-task runs draw each batch from the tasks' train sets: proportional to their sizes
    # (a shuffle of the union), or temperature-scaled, p(task) ~ size ** (1 / temperature), which
    # lifts small tasks (temperature 1 = proportional, large = uniform over tasks).
    sampling: str = choice(Sampling.PROPORTIONAL)
    temperature: float = bounded(2.0, 0.0, above=True)
    # Training batches of similar length: dynamic padding then pads less, but on the GMNER demo
    # the model learned less per epoch (docs/training.md, Batches and data loading). False: random batches.
    group_by_length: bool = False
    num_workers: int = bounded(0, 0)  # DataLoader worker processes for training batches (0: the main process)
    on_bad_line: str = choice(OnBadLine.ERROR)  # skip: a bad JSONL line is counted, reported and left out

    def __post_init__(self) -> None:
        parse_selection(self.context)


@dataclass
class PromptsConfig:
    """Instruction prefixes: with `use`, each source is "<instruction> <text>", the instruction a
    paraphrase from `prompts/<task>.yaml` (picked per record) or, for instruction-format input,
    the line's own. `set: heldout` decodes with paraphrases never seen in training."""

    use: bool = False
    set: str = choice(PromptSet.TRAIN)
    dir: str | None = None  # a folder of <task>.yaml; default: each task's own (prompts/<task>.yaml)


@dataclass
class FeaturesConfig:
    """VinVL-layout region features, first `max_regions` boxes: `dir` is a folder of
    `<image_id>.jpg.npz` files or a store packed from one (`genie features build`).
    In a multi-task run `{task}` in `dir` stands for the task's name."""

    dir: str | None = None
    max_regions: int = bounded(10, 1)  # published systems: 16-36
    dim: int = bounded(64, 1)  # the demo's; VinVL features are 2048
    on_missing: str = choice(OnMissing.ERROR)
    zero: bool = False  # ablation: feed all-zero regions (the text-only model)


@dataclass
class ModelConfig:
    """`name` is tiny-t5 / tiny-bart (random init, tokenizer trained on the data) or a
    Hugging Face model name or local folder saved with `save_pretrained`."""

    name: str = "tiny-t5"
    d_model: int = bounded(64, 1)
    layers: int = bounded(2, 1)
    heads: int = bounded(4, 1)
    d_ff: int = bounded(256, 1)
    vocab_size: int = bounded(1000, 100)
    dropout: float = bounded(0.0, 0.0, 1.0, below=True)
    max_source_length: int = bounded(128, 8)
    max_target_length: int = bounded(128, 8)

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise GenieError(f"model.d_model ({self.d_model}) must be a multiple of model.heads ({self.heads})")


@dataclass
class PeftConfig:
    """Parameter-efficient fine-tuning of a pretrained backbone (`model.name` a Hugging Face
    name or local folder): with LoRA only the adapters and genie's own heads (region encoder,
    grounding, pointer) train, and checkpoints hold only those."""

    method: str = choice(PeftMethod.NONE)
    r: int = bounded(8, 1)
    alpha: int = bounded(16, 1)
    dropout: float = bounded(0.05, 0.0, 1.0, below=True)
    target_modules: list[str] = field(default_factory=list)  # empty: peft's default for the architecture


@dataclass
class RegularizersConfig:
    """Optional training terms from the literature, on the text and region representations
    before the encoder fuses them (genie/regularizers). All off by default, and then absent:
    no parameters, no work, checkpoints as without them."""

    # MMIB's refinement: a variational bottleneck on each modality, KL to N(0, I) weighted by
    # beta (nats per dimension, so one beta fits any d_model).
    bottleneck: bool = False
    beta: float = bounded(0.01, 0.0)
    # A contrastive term between each post's pooled text and pooled regions, the other posts of
    # the batch its negatives: MMIB's InfoNCE, or CAG's, whose temperature per post shrinks with
    # the post's text-image consistency, temperature * (1 - cag_alpha * cosine).
    alignment: str = choice(Alignment.NONE)
    alignment_weight: float = bounded(0.1, 0.0)
    temperature: float = bounded(0.1, 0.0, above=True)
    cag_alpha: float = bounded(0.5, 0.0, 1.0, below=True)  # below 1: the temperature stays positive
    projection_dim: int = bounded(64, 1)

    @property
    def enabled(self) -> bool:
        return self.bottleneck or self.alignment != Alignment.NONE


@dataclass
class TrainConfig:
    output_dir: str | None = None  # None: runs/<task>[-context] for the demo, runs/<task>-<data folder name> for data.dir
    epochs: int = bounded(20, 1)
    batch_size: int = bounded(32, 1)
    gradient_accumulation_steps: int = bounded(1, 1)
    learning_rate: float = bounded(3e-3, 0.0, above=True)
    weight_decay: float = bounded(0.01, 0.0)
    warmup_ratio: float = bounded(0.05, 0.0, 1.0)
    grounding_weight: float = bounded(1.0, 0.0)
    max_grad_norm: float = bounded(1.0, 0.0)  # gradients clipped to this global norm (0: not clipped)
    mixed_precision: str = choice(Precision.NO)
    seed: int = 42
    eval_every_epochs: int = bounded(4, 1)
    # Early stopping: stop after this many dev evaluations in a row without an improvement of more
    # than min_delta (headline F1 points) over the best so far (0: never; every epoch runs). The
    # best dev checkpoint is selected as without it. Neither key is part of the run's identity:
    # they decide where a run stops, not what it trains up to there (docs/training.md).
    patience: int = bounded(0, 0)
    min_delta: float = bounded(0.0, 0.0)
    checkpoint_every_steps: int = bounded(0, 0)  # 0: one checkpoint per epoch
    keep_checkpoints: int = bounded(1, 1)  # the newest N are kept
    resume: bool = True  # the same run in output_dir (same config, data, processes): continue it
    overwrite: bool = False  # another run in output_dir: replace it (kept until this one has a checkpoint)
    max_steps: int = bounded(0, 0)  # stop after this many optimizer steps (0: run all epochs)
    # Experiment trackers through accelerate, beside metrics.jsonl (always written); "all": every
    # tracker installed. TensorBoard comes with `make install`.
    report_to: str = choice(Tracker.NONE)
    # A NaN or inf loss (or gradient norm): stop with a message naming the step, or skip the
    # optimizer step it is part of (counted in test_metrics.json). Either way no weight changes.
    on_nonfinite: str = choice(OnNonfinite.STOP)


@dataclass
class DecodeConfig:
    batch_size: int = bounded(100, 1)
    num_beams: int = bounded(1, 1)
    max_new_tokens: int = bounded(96, 1)
    # Text targets: write only what the task's parser reads whole (mentions copied from the tweet,
    # the task's labels, its clause shapes), ending within max_new_tokens. Index targets are
    # always decoded under their grammar.
    constrained: bool = True
    # `genie decode` / `genie predict`: inputs read, decoded, written and journaled together, so
    # memory is bounded by this, whatever the file's size, and a killed run resumes after a chunk.
    chunk_size: int = bounded(2048, 1)


@dataclass
class GenieConfig:
    """`task` is one task or a list (one model trained on the mixture, `data.sampling`); `all`,
    every registered task, is spelled out when the config is loaded."""

    task: str | list[str] = "gmner"
    target_format: str = choice(TargetFormat.TEXT)
    schema: int = bounded(SCHEMA, 1, SCHEMA)  # the config layout's version (load_config migrates older ones)
    data: DataConfig = field(default_factory=DataConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    regularizers: RegularizersConfig = field(default_factory=RegularizersConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    @property
    def tasks(self) -> list[str]:
        return [self.task] if isinstance(self.task, str) else list(self.task)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def migrate(data: dict, source: str) -> dict:
    """`data` in the current schema; a file without `schema` predates it and is schema 1."""
    version = data.get("schema", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise GenieError(f"config key 'schema' must be a version number >= 1, got {version!r}", source)
    if version > SCHEMA:
        raise GenieError(f"written by a newer genie (config schema {version}, this genie reads up to "
                         f"{SCHEMA}); upgrade genie", source)
    data = {key: value for key, value in data.items() if key != "schema"}  # the current one is the default
    for step in range(version, SCHEMA):
        data = MIGRATIONS[step](data)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> GenieConfig:
    """Read a YAML config (or the defaults) and apply `section.key=value` overrides."""
    data: dict[str, Any] = {}
    source = str(path) if path else "<defaults>"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
            raise GenieError("config file not found" + (f" (configs there: {', '.join(known)})" if known else ""),
                             path)
        try:
            data = yaml.safe_load(read_text(path)) or {}
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise GenieError(f"not valid YAML ({getattr(exc, 'problem', exc)})", path,
                             None if line is None else line + 1) from None
        if not isinstance(data, dict):
            raise GenieError("a config must be a mapping of sections", path)
        data = migrate(data, source)
    if overrides:  # a wrong key or value on the command line is blamed on it, not on the file
        _build(GenieConfig, _apply(overrides, {}), "the command line", prefix="")
    cfg = _build(GenieConfig, _apply(overrides, data), source, prefix="")
    if cfg.task == "all":  # saved spelled out: a checkpoint keeps its tasks when more are registered
        from genie.tasks import TASKS

        cfg = dataclasses.replace(cfg, task=list(TASKS))
    return cfg


def _apply(overrides: list[str] | tuple[str, ...], data: dict) -> dict:
    """`section.key=value` items (values read as YAML) set in the nested mapping `data`."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise GenieError(f"override '{item}' is not key=value", "the command line")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise GenieError(f"override '{item}': '{part}' is not a section", "the command line")
        node[leaf] = yaml.safe_load(raw) if raw else None
    return data


YAML_WORDS = {False: "no", True: "yes"}


def _build(cls: type, data: dict, source: str, prefix: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    known = set(fields)
    unknown = sorted(set(data) - known)
    if unknown:
        raise GenieError(f"unknown config key '{prefix}{unknown[0]}' (known: {', '.join(sorted(known))})", source)
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise GenieError(f"config key '{prefix}{name}' must be a section", source)
            values[name] = _build(hint, value, source, prefix=f"{prefix}{name}.")
        else:
            if isinstance(value, bool) and YAML_WORDS[value] in fields[name].metadata.get("choices", ()):
                value = YAML_WORDS[value]  # YAML 1.1 reads `mixed_precision: no` as false
            values[name] = _coerce(value, hint, f"{prefix}{name}", source)
            _check(values[name], fields[name].metadata, f"{prefix}{name}", source)
    try:
        return cls(**values)
    except GenieError as exc:  # a section's own check: name the config it came from
        raise GenieError(exc.problem, exc.path or source) from None


def _check(value: Any, rules: typing.Mapping, key: str, source: str) -> None:
    """The field's declared range (`bounded`) or options (`choice`)."""
    if "choices" in rules and value not in rules["choices"]:
        raise GenieError(f"config key '{key}' must be one of {', '.join(rules['choices'])}, got {value!r}", source)
    low, high = rules.get("low"), rules.get("high")
    if value is None or (low is None and high is None):
        return
    too_low = low is not None and (value <= low if rules["above"] else value < low)
    too_high = high is not None and (value >= high if rules["below"] else value > high)
    if too_low or too_high or value != value:  # value != value: NaN
        lower = "" if low is None else f"{'>' if rules['above'] else '>='} {low}"
        upper = "" if high is None else f"{'<' if rules['below'] else '<='} {high}"
        raise GenieError(f"config key '{key}' must be {' and '.join(b for b in (lower, upper) if b)}, "
                         f"got {value!r}", source)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is float and isinstance(value, str):  # YAML 1.1 reads "3e-5" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if kind in (int, bool) and type(value) is kind:
            return value
        if typing.get_origin(kind) is list and isinstance(value, list):
            return [_coerce(item, typing.get_args(kind)[0], f"{key}[{i}]", source) for i, item in enumerate(value)]
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise GenieError(f"config key '{key}' must be {names}, got {value!r}", source)
