"""Typed run configuration: dataclasses loaded from YAML, with `key=value` overrides.

Unknown keys and ill-typed values fail loudly, naming the file and the key, so a typo in a
config never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genie.errors import GenieError


@dataclass
class DataConfig:
    """Where the records come from. No `dir`: the embedded synthetic demo is built and used."""

    dir: str | None = None
    train: str = "train.jsonl"
    dev: str = "dev.jsonl"
    test: str = "test.jsonl"
    demo_dir: str = "demo_data"
    demo_seed: int = 0
    demo_train_tweets: int = 6000  # dev and test stay at 300 tweets each
    demo_noise_share: float = 0.0
    # Multi-task runs draw each batch from the tasks' train sets: proportional to their sizes
    # (a shuffle of the union), or temperature-scaled, p(task) ~ size ** (1 / temperature), which
    # lifts small tasks (temperature 1 = proportional, large = uniform over tasks).
    sampling: str = "proportional"  # proportional | temperature
    temperature: float = 2.0
    # Training batches of similar length: dynamic padding then pads less, but on the GMNER demo
    # the model learned less per epoch (README, Train). False: random batches.
    group_by_length: bool = False
    num_workers: int = 0  # DataLoader worker processes for training batches (0: the main process)

    def __post_init__(self) -> None:
        if self.sampling not in ("proportional", "temperature"):
            raise GenieError(f"data.sampling must be proportional or temperature, got {self.sampling!r}")
        if self.temperature <= 0:
            raise GenieError(f"data.temperature must be positive, got {self.temperature}")
        if self.num_workers < 0:
            raise GenieError(f"data.num_workers must be 0 or more, got {self.num_workers}")


@dataclass
class PromptsConfig:
    """Instruction prefixes: with `use`, each source is "<instruction> <text>", the instruction a
    paraphrase from `prompts/<task>.yaml` (picked per record) or, for instruction-format input,
    the line's own. `set: heldout` decodes with paraphrases never seen in training."""

    use: bool = False
    set: str = "train"  # train | heldout
    dir: str | None = None  # default: the repository's prompts/

    def __post_init__(self) -> None:
        if self.set not in ("train", "heldout"):
            raise GenieError(f"prompts.set must be train or heldout, got {self.set!r}")


@dataclass
class FeaturesConfig:
    """VinVL-layout region features, first `max_regions` boxes: `dir` is a folder of
    `<image_id>.jpg.npz` files or a store packed from one (`genie features build`).
    In a multi-task run `{task}` in `dir` stands for the task's name."""

    dir: str | None = None
    max_regions: int = 16
    dim: int = 2048
    on_missing: str = "error"  # error | zeros
    zero: bool = False  # ablation: feed all-zero regions (the text-only model)


@dataclass
class ModelConfig:
    """`name` is tiny-t5 / tiny-bart (random init, tokenizer trained on the data) or a
    Hugging Face model name or local folder saved with `save_pretrained`."""

    name: str = "tiny-t5"
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    d_ff: int = 128
    vocab_size: int = 1000
    dropout: float = 0.1
    max_source_length: int = 128
    max_target_length: int = 128


@dataclass
class PeftConfig:
    """Parameter-efficient fine-tuning of a pretrained backbone (`model.name` a Hugging Face
    name or local folder): with LoRA only the adapters and genie's own heads (region encoder,
    grounding, pointer) train, and checkpoints hold only those."""

    method: str = "none"  # none | lora
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=list)  # empty: peft's default for the architecture

    def __post_init__(self) -> None:
        if self.method not in ("none", "lora"):
            raise GenieError(f"peft.method must be none or lora, got {self.method!r}")


@dataclass
class RegularizersConfig:
    """Optional training terms from the literature, on the text and region representations
    before the encoder fuses them (genie/regularizers). All off by default, and then absent:
    no parameters, no work, checkpoints as without them."""

    # MMIB's refinement: a variational bottleneck on each modality, KL to N(0, I) weighted by
    # beta (nats per dimension, so one beta fits any d_model).
    bottleneck: bool = False
    beta: float = 0.01
    # A contrastive term between each post's pooled text and pooled regions, the other posts of
    # the batch its negatives: MMIB's InfoNCE, or CAG's, whose temperature per post shrinks with
    # the post's text-image consistency, temperature * (1 - cag_alpha * cosine).
    alignment: str = "none"  # none | infonce | cag
    alignment_weight: float = 0.1
    temperature: float = 0.1
    cag_alpha: float = 0.5
    projection_dim: int = 64

    def __post_init__(self) -> None:
        if self.alignment not in ("none", "infonce", "cag"):
            raise GenieError(f"regularizers.alignment must be none, infonce or cag, got {self.alignment!r}")
        if self.beta < 0 or self.alignment_weight < 0:
            raise GenieError("regularizers.beta and regularizers.alignment_weight must be 0 or more")
        if self.temperature <= 0:
            raise GenieError(f"regularizers.temperature must be positive, got {self.temperature}")
        if not 0 <= self.cag_alpha < 1:
            raise GenieError(f"regularizers.cag_alpha must be in [0, 1) (a positive temperature), got {self.cag_alpha}")
        if self.projection_dim < 1:
            raise GenieError(f"regularizers.projection_dim must be positive, got {self.projection_dim}")

    @property
    def enabled(self) -> bool:
        return self.bottleneck or self.alignment != "none"


@dataclass
class TrainConfig:
    output_dir: str = "runs/gmner"
    epochs: int = 10
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    grounding_weight: float = 1.0
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 42
    eval_every_epochs: int = 1
    checkpoint_every_steps: int = 0  # 0: one checkpoint per epoch
    keep_checkpoints: int = 1  # the newest N are kept
    resume: bool = True  # continue from the newest checkpoint in output_dir, if any
    max_steps: int = 0  # stop after this many optimizer steps (0: run all epochs)

    def __post_init__(self) -> None:
        if self.keep_checkpoints < 1:
            raise GenieError(f"train.keep_checkpoints must be at least 1, got {self.keep_checkpoints}")


@dataclass
class DecodeConfig:
    batch_size: int = 64
    num_beams: int = 1
    max_new_tokens: int = 96


@dataclass
class GenieConfig:
    """`task` is one task or a list (one model trained on the mixture, `data.sampling`)."""

    task: str | list[str] = "gmner"
    target_format: str = "text"
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


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> GenieConfig:
    """Read a YAML config (or the defaults) and apply `section.key=value` overrides."""
    data: dict[str, Any] = {}
    source = str(path) if path else "<defaults>"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise GenieError("config file not found", path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise GenieError(f"not valid YAML ({getattr(exc, 'problem', exc)})", path,
                             None if line is None else line + 1) from None
        if not isinstance(data, dict):
            raise GenieError("a config must be a mapping of sections", path)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise GenieError(f"override '{item}' is not key=value")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise GenieError(f"override '{item}': '{part}' is not a section")
        node[leaf] = yaml.safe_load(raw) if raw else None
    return _build(GenieConfig, data, source, prefix="")


def _build(cls: type, data: dict, source: str, prefix: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
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
            values[name] = _coerce(value, hint, f"{prefix}{name}", source)
    return cls(**values)


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
