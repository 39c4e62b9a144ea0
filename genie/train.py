"""The training loop, in the shape of Hugging Face's accelerate examples.

Checkpoints (`save_state`) hold model, optimizer, scheduler, RNG states and the loop
position, so a resumed run continues exactly; the best dev checkpoint is kept apart and
the test split is decoded only once, with it, at the end.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_scheduler

from genie.config import GenieConfig
from genie.data import Collator, GenieDataset
from genie.decode import predict
from genie.formats import make_targets
from genie.io import atomic_write
from genie.modeling import GenieModel
from genie.pipeline import build_model, feature_source, load_splits
from genie.records import write_records
from genie.tasks import get_task

logger = logging.getLogger(__name__)


@dataclass
class LoopState:
    """Where the loop is, saved with every checkpoint (accelerate `register_for_checkpointing`)."""

    epoch: int = 0
    step_in_epoch: int = 0
    completed_steps: int = 0
    best_metric: float = -1.0

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


def train(cfg: GenieConfig) -> dict:
    """Train, select on dev, decode test with the best checkpoint; returns the test metrics."""
    out = Path(cfg.train.output_dir)
    accelerator = Accelerator(gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
                              mixed_precision=cfg.train.mixed_precision, project_dir=str(out),
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    set_seed(cfg.train.seed)
    task = get_task(cfg.task)
    splits, features_dir = load_splits(cfg, task)
    cfg = replace(cfg, features=replace(cfg.features, dir=features_dir))  # saved with the model for decode
    features = feature_source(cfg, features_dir)
    checkpoints = out / "checkpoints"
    resume_from = _latest(checkpoints) if cfg.train.resume else None
    # A resumed tiny model must keep the vocabulary its checkpoint was trained with.
    saved_tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer") if resume_from else None
    tokenizer, model = build_model(cfg, task, splits.train, saved_tokenizer)

    targets = make_targets(cfg.target_format, task, tokenizer, cfg.model.max_source_length,
                           cfg.model.max_target_length)

    def dataset(records):
        return GenieDataset(records, targets, features, zero_features=cfg.features.zero)

    collate = Collator(tokenizer.pad_token_id)
    train_set, dev_set, test_set = dataset(splits.train), dataset(splits.dev), dataset(splits.test)
    # Its own generator: starting an epoch's iterator must not draw from the global RNG, or a
    # run resumed mid-epoch would see different dropout masks than an uninterrupted one.
    train_loader = DataLoader(train_set, batch_size=cfg.train.batch_size, shuffle=True, collate_fn=collate,
                              generator=torch.Generator().manual_seed(cfg.train.seed))
    dev_loader = DataLoader(dev_set, batch_size=cfg.decode.batch_size, collate_fn=collate)
    test_loader = DataLoader(test_set, batch_size=cfg.decode.batch_size, collate_fn=collate)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.learning_rate,
                                  weight_decay=cfg.train.weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.train.gradient_accumulation_steps)
    total_steps = cfg.train.epochs * steps_per_epoch
    if cfg.train.max_steps:
        total_steps = min(total_steps, cfg.train.max_steps)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(cfg.train.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model, optimizer, train_loader, dev_loader, test_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, dev_loader, test_loader, scheduler)
    state = LoopState()
    accelerator.register_for_checkpointing(state)

    if resume_from:
        accelerator.load_state(str(resume_from))
        accelerator.print(f"resumed from {resume_from} at step {state.completed_steps}")
    elif accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(out / "tokenizer")
    _save_config(accelerator, cfg, out)
    accelerator.print(f"{task.name}: {len(train_set)} train / {len(dev_set)} dev / {len(test_set)} test, "
                      f"{sum(p.numel() for p in model.parameters()):,} parameters, {total_steps} steps")

    progress = tqdm(total=total_steps, initial=state.completed_steps, desc="train",
                    disable=not accelerator.is_local_main_process)
    while state.epoch < cfg.train.epochs and state.completed_steps < total_steps:
        model.train()
        train_loader.set_epoch(state.epoch)
        loader = accelerator.skip_first_batches(train_loader, state.step_in_epoch) if state.step_in_epoch else train_loader
        for batch in loader:
            with accelerator.accumulate(model):
                losses = model(batch, cfg.train.grounding_weight)
                accelerator.backward(losses["loss"])
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state.step_in_epoch += 1
            if accelerator.sync_gradients:
                state.completed_steps += 1
                progress.update(1)
                progress.set_postfix(loss=f"{losses['loss'].item():.3f}")
                every = cfg.train.checkpoint_every_steps
                if every and state.completed_steps % every == 0:
                    _checkpoint(accelerator, checkpoints, state, cfg.train.keep_checkpoints)
                if state.completed_steps >= total_steps:
                    break
        state.epoch += 1
        state.step_in_epoch = 0
        if state.epoch % cfg.train.eval_every_epochs == 0 or state.completed_steps >= total_steps:
            dev_preds, _ = predict(accelerator, model, dev_set, dev_loader, cfg.decode, desc="dev")
            metric = task.evaluate(dev_set.records, dev_preds)[task.headline]["f1"]
            accelerator.print(f"epoch {state.epoch}: dev {task.headline} F1 {metric:.2f}")
            if metric > state.best_metric:
                state.best_metric = metric
                _save_best(accelerator, model, tokenizer, cfg, out)
        _checkpoint(accelerator, checkpoints, state, cfg.train.keep_checkpoints)
    progress.close()

    accelerator.wait_for_everyone()
    best = GenieModel.from_pretrained(out / "best")
    accelerator.unwrap_model(model).load_state_dict(best.state_dict())
    test_preds, stats = predict(accelerator, model, test_set, test_loader, cfg.decode, desc="test")
    metrics = task.evaluate(test_set.records, test_preds)
    metrics["dev_best"] = state.best_metric
    metrics["parser"] = dict(stats)
    metrics["features"] = features.report()
    if accelerator.is_main_process:
        write_records(out / "test_predictions.jsonl", test_preds)
        with atomic_write(out / "test_metrics.json") as handle:
            json.dump(metrics, handle, indent=2)
    return metrics


def _saved(checkpoints: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    return sorted(checkpoints.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))


def _latest(checkpoints: Path) -> Path | None:
    found = _saved(checkpoints)
    return found[-1] if found else None


def _checkpoint(accelerator: Accelerator, checkpoints: Path, state: LoopState, keep: int) -> None:
    """save_state to a temporary folder, then rename: a kill mid-save leaves the last good one."""
    final = checkpoints / f"step_{state.completed_steps}"
    tmp = checkpoints / f".tmp_step_{state.completed_steps}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in _saved(checkpoints)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _save_best(accelerator: Accelerator, model, tokenizer, cfg: GenieConfig, out: Path) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = out / ".best.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "genie.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        shutil.rmtree(out / "best", ignore_errors=True)
        tmp.rename(out / "best")
    accelerator.wait_for_everyone()


def _save_config(accelerator: Accelerator, cfg: GenieConfig, out: Path) -> None:
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "genie.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
