"""The training loop, in the shape of Hugging Face's accelerate examples; `genie.training.run`
makes its parts and hands them over.

Checkpoints (`save_state`) hold model, optimizer, scheduler, RNG states and the loop
position, so a resumed run continues exactly; the best dev checkpoint is kept apart and
the test split is decoded only once, with it, at the end.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from genie.config import GenieConfig
from genie.data import GenieDataset
from genie.errors import GenieError
from genie.inference.decode import predict
from genie.io import atomic_folder, atomic_write, install, staging
from genie.model.modeling import GenieModel
from genie.records import write_records
from genie.regions.manifest import ORIGINS, read_manifest
from genie.tasks import Task
from genie.training.distributed import full_size, load_weights
from genie.training.metrics_log import MetricsLog
from genie.training.run_folder import RunFolder
from genie.training.run_setup import TaskData, save_labels


@dataclass
class LoopState:
    """Where the loop is, saved with every checkpoint (accelerate `register_for_checkpointing`)."""

    epoch: int = 0
    step_in_epoch: int = 0
    completed_steps: int = 0
    best_metric: float = -1.0
    best_epoch: int = 0
    skipped_steps: int = 0  # optimizer steps left out for a NaN or inf (train.on_nonfinite=skip)
    dev_scores: list = field(default_factory=list)  # every evaluation's dev score, for early stopping
    stopped_early: bool = False

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


@dataclass
class Part:
    """A task's part of the run: its data, its datasets per split, and the dev and test loaders."""

    data: TaskData
    sets: dict[str, GenieDataset]
    loaders: dict[str, DataLoader]

    @property
    def task(self) -> Task:
        return self.data.task


@dataclass(eq=False)
class Trainer:
    """The loop over a run's parts, made outside it (`genie.training.run.assemble`), already
    through `accelerator.prepare` and resumed when the run resumes: `fit` (epochs of
    `train_step`, then `evaluate_and_select` and `checkpoint`) and `test` with the best
    checkpoint. Every attribute exists from construction, so a test can hand it a one-batch model."""

    cfg: GenieConfig
    accelerator: Accelerator
    tokenizer: PreTrainedTokenizerBase
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    train_loader: DataLoader
    parts: list[Part]
    total_steps: int
    folder: RunFolder
    log: MetricsLog
    state: LoopState = field(default_factory=LoopState)  # registered for checkpointing by whoever resumes it
    # The optimizer step in progress: its batches' losses so far, its learning rate, start and
    # examples, and whether one of its batches had a NaN or inf (nothing of the step is applied).
    step_losses: dict[str, list[torch.Tensor]] = field(default_factory=dict, init=False)
    step_lr: float = field(default=0.0, init=False)
    step_started: float = field(default=0.0, init=False)
    step_examples: int = field(default=0, init=False)
    dropped: bool = field(default=False, init=False)

    @property
    def out(self) -> Path:
        return self.folder.path

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    # -- training -----------------------------------------------------------------------------

    def fit(self) -> None:
        state, train = self.state, self.cfg.train
        with tqdm(total=self.total_steps, initial=state.completed_steps, desc="train",
                  disable=not self.accelerator.is_local_main_process) as progress:  # closed on an interrupt too
            while state.epoch < train.epochs and state.completed_steps < self.total_steps and not state.stopped_early:
                self.model.train()
                self.train_loader.set_epoch(state.epoch)
                loader = self.train_loader
                if state.step_in_epoch:  # resumed mid-epoch: the batches already seen are skipped
                    loader = self.accelerator.skip_first_batches(self.train_loader, state.step_in_epoch)
                for batch in loader:
                    losses = self.train_step(batch)
                    if self.accelerator.sync_gradients:
                        progress.update(1)
                        progress.set_postfix({name.removesuffix("_loss"): f"{value.item():.3f}"
                                              for name, value in losses.items()}, refresh=False)
                        if train.checkpoint_every_steps and state.completed_steps % train.checkpoint_every_steps == 0:
                            self.checkpoint()
                        if state.completed_steps >= self.total_steps:
                            break
                state.epoch += 1
                state.step_in_epoch = 0
                if state.epoch % train.eval_every_epochs == 0 or state.completed_steps >= self.total_steps:
                    self.evaluate_and_select()
                self.checkpoint()

    def train_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """One batch forward and backward; on the last batch of an accumulation, the optimizer
        step, left out (with everything accumulated) when a loss or the gradient norm is not
        finite on any process."""
        accelerator, state = self.accelerator, self.state
        if not self.step_losses:  # the step's first batch: the rate the step trains at, and its start
            self.step_lr, self.step_started = self.scheduler.get_last_lr()[0], time.perf_counter()
            self.step_examples = 0
        self.step_examples += len(batch["index"])
        with accelerator.accumulate(self.model):
            losses = self.model(batch, self.cfg.train.grounding_weight, accelerator.state.deepspeed_plugin is not None)
            finite = _all_finite(accelerator, losses["loss"])
            if finite:
                accelerator.backward(losses["loss"])
            if finite and accelerator.sync_gradients:
                norm = accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.train.max_grad_norm or math.inf)
                finite = _all_finite(accelerator, norm)
            if not finite and not self.dropped:
                _nonfinite(accelerator, self.cfg, state, losses, self.checkpoints)
            self.dropped = self.dropped or not finite
            if not (self.dropped and accelerator.sync_gradients):
                self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()  # also clears what a dropped step had accumulated
        state.step_in_epoch += 1
        for name, value in losses.items():
            self.step_losses.setdefault(name, []).append(value.detach().float())
        if accelerator.sync_gradients:
            self.dropped = False
            state.completed_steps += 1
            self._log_step()
        return losses

    def _log_step(self) -> None:
        """The step's line in metrics.jsonl: each loss term's mean over its batches and processes,
        and the examples per second of all processes together."""
        names = list(self.step_losses)
        values = torch.stack([*(torch.stack(self.step_losses[name]).mean() for name in names),
                              torch.tensor(float(self.step_examples * self.accelerator.num_processes))])
        *means, examples = self.accelerator.reduce(values.to(self.accelerator.device), "mean").tolist()  # a sum
        self.step_losses = {}
        self.log.write(step=self.state.completed_steps, epoch=self.state.epoch + 1,  # the epoch in progress
                       lr=self.step_lr, **dict(zip(names, means)),
                       examples_per_second=round(examples / (time.perf_counter() - self.step_started), 2))

    def evaluate_and_select(self) -> None:
        """Dev headline F1 per task (their mean selects); a better one replaces `best/`."""
        scores = {part.task.name: self._evaluate(part, "dev")[0][part.task.headline]["f1"] for part in self.parts}
        metric = sum(scores.values()) / len(scores)
        self.accelerator.print(f"epoch {self.state.epoch}: dev " + ", ".join(
            f"{part.task.headline} F1 {f1:.2f}" for part, f1 in zip(self.parts, scores.values()))
            + (f", mean {metric:.2f}" if len(self.parts) > 1 else ""))
        self.log.write(step=self.state.completed_steps, epoch=self.state.epoch, dev=scores)
        state = self.state
        if metric > state.best_metric:
            state.best_metric, state.best_epoch = metric, state.epoch
            self._save_best()
        state.dev_scores.append(metric)
        stale = evaluations_without_gain(state.dev_scores, self.cfg.train.min_delta)
        if (self.cfg.train.patience and stale >= self.cfg.train.patience and state.epoch < self.cfg.train.epochs
                and state.completed_steps < self.total_steps):
            state.stopped_early = True
            why = (f"no dev gain over {self.cfg.train.min_delta:g} in {stale} evaluations "
                   f"(train.patience={self.cfg.train.patience}); best dev {state.best_metric:.2f} at epoch {state.best_epoch}")
            self.accelerator.print(f"epoch {state.epoch}: stopped early: {why}")
            self.log.write(step=state.completed_steps, epoch=state.epoch, stopped=why)

    def checkpoint(self) -> None:
        """save_state to a temporary folder, then rename: a kill mid-save leaves the last good one."""
        accelerator = self.accelerator
        final = self.checkpoints / f"step_{self.state.completed_steps}"
        tmp = staging(final)  # every process writes its part there (atomic_folder is one process's)
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            install(tmp, final)
            for old in _saved(self.checkpoints)[:-self.cfg.train.keep_checkpoints]:
                shutil.rmtree(old)
            self.folder.checkpointed()
        accelerator.wait_for_everyone()

    def _save_best(self) -> None:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        state = accelerator.get_state_dict(self.model)  # on every process: under ZeRO-3 it gathers the shards
        if accelerator.is_main_process:
            with atomic_folder(self.out / "best") as tmp:
                accelerator.unwrap_model(self.model).save_pretrained(tmp, state_dict=state)
                self.tokenizer.save_pretrained(tmp)
                (tmp / "genie.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
                origins = {part.task.name: read_manifest(part.data.features.directory) for part in self.parts}
                (tmp / ORIGINS).write_text(json.dumps(origins, indent=2))  # which detector made the regions
                save_labels(tmp, [part.task for part in self.parts])
        accelerator.wait_for_everyone()

    # -- test ---------------------------------------------------------------------------------

    def test(self) -> dict:
        """The test split decoded with the best dev checkpoint: metrics and predictions saved."""
        self.accelerator.wait_for_everyone()
        with full_size(self.accelerator):
            best = GenieModel.from_pretrained(self.out / "best")
        load_weights(self.accelerator, self.model, best.state_dict())
        results, predictions = {}, []
        for part in self.parts:
            results[part.task.name], preds = self._evaluate(part, "test")
            predictions += preds
        metrics = self._summary(results)
        if self.accelerator.is_main_process:
            write_records(self.out / "test_predictions.jsonl", predictions)
            with atomic_write(self.out / "test_metrics.json") as handle:
                json.dump(metrics, handle, indent=2)
        return metrics

    def _summary(self, results: dict[str, dict]) -> dict:
        parts = self.parts
        if len(parts) == 1:
            metrics = results[parts[0].task.name]
        else:
            metrics = {**results, "mean": sum(results[p.task.name][p.task.headline]["f1"] for p in parts) / len(parts)}
        metrics["dev_best"] = self.state.best_metric
        metrics["best_epoch"] = self.state.best_epoch
        metrics["epochs_trained"] = self.state.epoch
        metrics["stopped_early"] = self.state.stopped_early
        metrics["text_only"] = any(part.data.features.text_only for part in self.parts)
        metrics["skipped_steps"] = self.state.skipped_steps
        skipped = {f"{part.task.name}/{split}": report for part in self.parts for split, report in part.data.skipped.items()}
        if skipped:
            metrics["skipped_lines"] = skipped
        return metrics

    def _evaluate(self, part: Part, split: str) -> tuple[dict, list]:
        """A task's metrics on a split (with parser and feature counts), and its predictions."""
        dataset = part.sets[split]
        preds, stats = predict(self.accelerator, self.model, dataset, part.loaders[split], self.cfg.decode,
                               desc=f"{split} {part.task.name}")
        metrics = part.task.evaluate(dataset.records, preds)
        metrics["parser"] = dict(stats)
        features = dataset.features
        for seen, missing in gather_object([(features.seen, features.missing)]):  # each process read its shards
            features.merge(seen, missing)
        metrics["features"] = features.report()
        return metrics, preds


def evaluations_without_gain(scores: list[float], min_delta: float) -> int:
    """How many evaluations in a row, up to the last, did not beat the best before them by more
    than `min_delta`. Counted from the whole history, so a run resumed with another patience or
    min_delta stops where one started with them would have."""
    best, stale = -math.inf, 0
    for score in scores:
        if score > best + min_delta:
            best, stale = score, 0
        else:
            stale += 1
    return stale


def _all_finite(accelerator: Accelerator, value: torch.Tensor | None) -> bool:
    """Whether `value` is finite on every process (they must all skip or stop together). None:
    nothing to check (DeepSpeed clips inside its engine)."""
    if value is None:
        return True
    bad = (~torch.isfinite(torch.as_tensor(value, device=accelerator.device).float())).float().sum()
    return not bool(accelerator.reduce(bad, "sum") > 0)


def _nonfinite(accelerator: Accelerator, cfg: GenieConfig, state: LoopState, losses: dict, checkpoints: Path) -> None:
    """A NaN or inf loss or gradient norm in the step: stop (a GenieError, one line) or count the
    step as skipped."""
    values = ", ".join(f"{name} {value.item():.4g}" for name, value in losses.items())
    where = f"step {state.completed_steps + 1} (epoch {state.epoch + 1}, batch {state.step_in_epoch + 1}): {values}"
    if cfg.train.on_nonfinite == "stop":
        last = latest_checkpoint(checkpoints)
        raise GenieError(f"{where}: a NaN or inf loss or gradient; stopped before it reached the weights "
                         f"(last checkpoint: {last or 'none'}; train.on_nonfinite=skip skips such steps)")
    state.skipped_steps += 1
    if accelerator.is_main_process:
        tqdm.write(f"{where}: a NaN or inf loss or gradient; the step is skipped ({state.skipped_steps} so far)")




def _saved(checkpoints: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    return sorted(checkpoints.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(checkpoints: Path) -> Path | None:
    found = _saved(checkpoints)
    return found[-1] if found else None
