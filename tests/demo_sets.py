"""Small demos of several tasks, for the tests that need a few records of each (import as
`from demo_sets import small_demos`); each test module picks the sizes it needs."""

from __future__ import annotations

from pathlib import Path

import torch

from genie.config import load_config
from genie.data import Collator, GenieDataset
from genie.demo import build_demo
from genie.model.targets import make_targets
from genie.tasks import TASKS, get_task
from genie.training.run_setup import build_model, load_task_data


def small_demos(out: Path, names=tuple(TASKS), **sizes) -> Path:
    """Each named task's demo under `out/<task>`; `sizes`: build_demo's n_train, n_dev, n_test,
    feature_dim."""
    for name in names:
        build_demo(out / name, TASKS[name].demo, **sizes)
    return out


def task_config(name: str, overrides=()):
    """The config `make train TASK=<name>` trains with: configs/<name>.yaml, or, for a task that
    has none, the defaults with `task=<name>`."""
    path = Path("configs") / f"{name}.yaml"
    return load_config(path, overrides) if path.is_file() else load_config(None, [f"task={name}", *overrides])


def untrained_index_model(demos: Path, name: str, backbone: str, seed: int):
    """A tiny random model with index targets, and the dev split of the task's demo under `demos`
    as one batch: (task, model, batch, records)."""
    task, model, dataset = untrained_index_dataset(demos, name, backbone, seed)
    batch = Collator(dataset.targets.tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    return task, model, batch, dataset.records


def untrained_index_dataset(demos: Path, name: str, backbone: str, seed: int):
    """(task, model, dataset of the dev split) for `untrained_index_model`."""
    torch.manual_seed(seed)
    task = get_task(name)
    cfg = task_config(name, ["target_format=index", f"model.name={backbone}", "model.d_model=32",
                             "model.heads=2", "model.d_ff=64", "features.dim=16",
                             "model.vocab_size=300", "model.dropout=0.0",
                             f"data.dir={demos / name}", f"features.dir={demos / name / 'features'}"])
    part = load_task_data(cfg, task)
    records = part.records["dev"]
    tokenizer, model = build_model(cfg, [part])
    targets = make_targets("index", task, tokenizer, cfg.model.max_source_length, cfg.model.max_target_length)
    return task, model.eval(), GenieDataset(records, targets, part.features)
