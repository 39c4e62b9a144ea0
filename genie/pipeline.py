"""What a run needs before the loop: the split records, the feature source, the tokenizer
and the model, built from a config (tiny from-scratch models or a real pretrained one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer

from genie.config import GenieConfig
from genie.demo import build_demo
from genie.errors import GenieError
from genie.features import FeatureSource
from genie.formats import pointer_labels
from genie.modeling import TINY_MODELS, GenieModel, build_backbone, is_genie_checkpoint, load_pretrained
from genie.records import Record, read_records
from genie.tasks import Task
from genie.tokenizer import train_bart_tokenizer, train_t5_tokenizer

SPLITS = ("train", "dev", "test")


@dataclass
class Splits:
    train: list[Record]
    dev: list[Record]
    test: list[Record]


def load_splits(cfg: GenieConfig, task: Task) -> tuple[Splits, str | None]:
    """The records of each split and the feature folder (the demo's when no data is given)."""
    features_dir = cfg.features.dir
    if cfg.data.dir is None:
        demo_dir = Path(cfg.data.demo_dir) / task.name
        build_demo(demo_dir, task.demo, seed=cfg.data.demo_seed, n_train=cfg.data.demo_train_tweets,
                   feature_dim=cfg.features.dim, noise_share=cfg.data.demo_noise_share)
        data_dir = demo_dir
        features_dir = features_dir or str(demo_dir / "features")
    else:
        data_dir = Path(cfg.data.dir)
    records = {split: read_records(data_dir / getattr(cfg.data, split)) for split in SPLITS}
    for split, rows in records.items():
        wrong = {r.task for r in rows} - {task.name}
        if wrong:
            raise GenieError(f"{split} records are for task {sorted(wrong)}, this run is {task.name}",
                             data_dir / getattr(cfg.data, split))
    return Splits(**records), features_dir


def feature_source(cfg: GenieConfig, directory: str | None) -> FeatureSource:
    return FeatureSource(directory, cfg.features.max_regions, cfg.features.dim, cfg.features.on_missing)


def build_model(cfg: GenieConfig, task: Task, train_records: list[Record], tokenizer=None):
    """Tokenizer and GenieModel: tiny ones initialised here (with a tokenizer trained on the
    train split unless one is given), or loaded from `model.name`."""
    name = cfg.model.name
    labels = pointer_labels(cfg.target_format, task)
    if name in TINY_MODELS:
        if tokenizer is None:
            texts = [task.source_text(r) for r in train_records]
            if not labels:  # index targets never reach the tokenizer
                texts += [task.linearize(r).text for r in train_records]
            trainer = train_t5_tokenizer if name == "tiny-t5" else train_bart_tokenizer
            tokenizer = trainer(texts, cfg.model.vocab_size)
        backbone = build_backbone(cfg.model, tokenizer,
                                  max_positions=cfg.model.max_source_length + cfg.features.max_regions + 2)
        return tokenizer, GenieModel(backbone, cfg.features.dim, cfg.model.dropout, labels)
    if is_genie_checkpoint(name):
        return AutoTokenizer.from_pretrained(name), load_checkpoint(name, cfg, task)
    tokenizer, backbone = load_pretrained(name)
    return tokenizer, GenieModel(backbone, cfg.features.dim, cfg.model.dropout, labels)


def load_checkpoint(directory: str | Path, cfg: GenieConfig, task: Task) -> GenieModel:
    """A saved GenieModel, checked to have the head `cfg.target_format` needs for `task`."""
    model = GenieModel.from_pretrained(directory)
    if model.pointer_labels != pointer_labels(cfg.target_format, task):
        raise GenieError(f"the checkpoint's output head does not fit {task.name} targets in the "
                         f"{cfg.target_format} format", directory)
    return model
