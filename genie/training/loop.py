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
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import (
    DistributedDataParallelKwargs,
    broadcast_object_list,
    gather_object,
    set_seed,
)
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_scheduler

from genie.config import GenieConfig
from genie.data import Collator, GenieDataset
from genie.errors import GenieError
from genie.inference.decode import decode_loader, predict
from genie.io import atomic_folder, atomic_write, install, staging
from genie.model.modeling import GenieModel
from genie.options import PeftMethod, Precision, Tracker
from genie.records import write_records
from genie.regions.manifest import ORIGINS, read_manifest
from genie.tasks import Task
from genie.training.batching import EpochShuffle, LengthGroupedBatches
from genie.training.distributed import full_size, load_weights
from genie.training.metrics_log import MetricsLog
from genie.training.precision import make_accelerator
from genie.training.run_folder import Interrupted, RunFolder, default_output_dir, fingerprint
from genie.training.run_setup import (
    SPLITS,
    TaskData,
    build_model,
    check_model,
    load_task_data,
    run_tasks,
    save_labels,
    split_files,
    task_datasets,
    with_demo_features,
)
from genie.training.sampling import TemperatureSampler
from genie.training.tracking import accelerator_kwargs, tracked_config

logger = logging.getLogger(__name__)
T = TypeVar("T")


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


class _TiedEmbeddings(logging.Filter):
    """accelerate warns at every `save_state` that it "Removed shared tensor" while saving: T5's and
    BART's input and output embeddings are one tied matrix, saved once and tied again on load."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


@dataclass
class Part:
    """A task's datasets and evaluation loaders in the run."""

    task: Task
    sets: dict[str, GenieDataset]
    loaders: dict[str, DataLoader]


def train(cfg: GenieConfig) -> dict:
    """Train, select on dev, decode test with the best checkpoint; returns the test metrics
    (a multi-task run: each task's, and the mean of their headline F1). The run folder is locked
    for the run; Ctrl-C or SIGTERM raise `Interrupted`, naming the last checkpoint."""
    cfg = replace(cfg, train=replace(cfg.train, output_dir=cfg.train.output_dir or default_output_dir(cfg)))
    tasks = run_tasks(cfg)  # a wrong task name or format stops here, before a run folder exists
    check_model(cfg)  # and so does a mistyped model path, or a Hub name with no Hub to reach
    return Trainer(cfg, tasks).run()


class Trainer:
    """One run in parts: `setup` (data, model, optimizer, scheduler, `prepare`, resume), `fit`
    (epochs of `train_step`, then `evaluate_and_select` and `checkpoint`), and `test` with the
    best checkpoint."""

    def __init__(self, cfg: GenieConfig, tasks: list[Task]):
        self.cfg, self.tasks = cfg, tasks
        self.out = Path(cfg.train.output_dir)
        self.accelerator = make_accelerator(
            cfg.train.mixed_precision, gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
            **accelerator_kwargs(cfg, self.out),
            # A batch without grounding slots leaves the grounding head out of the loss.
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        logging.getLogger("accelerate.utils.other").addFilter(_TiedEmbeddings())
        self.folder = RunFolder(self.out)
        self.state = LoopState()
        self.dropped = False  # a NaN or inf in this optimizer step's batches: nothing of it is applied
        self.tracking = cfg.train.report_to != Tracker.NONE
        self.log = MetricsLog(self.out, self.accelerator.is_main_process,
                              self.accelerator.log if self.tracking else None)
        self.step_losses: dict[str, list[torch.Tensor]] = {}  # this optimizer step's batches so far
        self.step_lr, self.step_started, self.step_examples = 0.0, 0.0, 0

    def run(self) -> dict:
        _on_main(self.accelerator, self.folder.lock)
        try:
            if self.setup() == "finished":
                self.accelerator.print(f"{self.out}: this run has finished (nothing trained); its test metrics:")
                return json.loads((self.out / "test_metrics.json").read_text(encoding="utf-8"))
            self.fit()
            return self.test()
        except KeyboardInterrupt:
            raise Interrupted(self.out, _latest(self.checkpoints) if self.folder.claimed else None) from None
        finally:
            self.accelerator.end_training()  # the trackers' files closed
            self.folder.release()

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    # -- setup --------------------------------------------------------------------------------

    def setup(self) -> str:
        """Everything before the first step; returns how the run folder was claimed (new, resume,
        finished)."""
        self.accelerator.print(f"run folder: {self.out}")
        set_seed(self.cfg.train.seed)
        claim = self._load_data()
        if claim == "finished":
            return claim
        resume_from = _latest(self.checkpoints) if claim == "resume" else None
        # A resumed tiny model must keep the vocabulary its checkpoint was trained with.
        saved_tokenizer = AutoTokenizer.from_pretrained(self.out / "tokenizer") if resume_from else None
        self.tokenizer, model = build_model(self.cfg, self.data, saved_tokenizer)
        self.parts = [self._part(part) for part in self.data]
        multiple = 8 if self.cfg.train.mixed_precision != Precision.NO else 1
        loader = train_loader(self.cfg, [part.sets["train"] for part in self.parts],
                              Collator(self.tokenizer.pad_token_id, multiple))
        optimizer = build_optimizer(model, self.cfg)
        self.total_steps = self._total_steps(loader)
        scheduler = self._scheduler(optimizer)
        self._prepare(model, optimizer, loader, scheduler)
        self._restore_or_start(resume_from)
        if self.tracking:
            self.accelerator.init_trackers(self.out.name, config=tracked_config(self.cfg))
        self._announce()
        return claim

    def _load_data(self) -> str:
        """The tasks' records and features (the main process builds a demo first), and the run
        folder claimed for exactly these inputs."""
        accelerator, tasks = self.accelerator, self.tasks
        self.cfg = cfg = with_demo_features(self.cfg)  # saved with the model for decode
        with accelerator.main_process_first():  # the main process builds the demo, the others then read it
            self.data = [load_task_data(cfg, task) for task in tasks]
        if any(part.features.text_only for part in self.data):
            accelerator.print("text-only run: features.dir is unset, so the model sees no image "
                              "(docs/training.md, Text-only runs)")
        files = {f"{task.name}/{split}": path for task in tasks for split, path in split_files(cfg, task).items()}
        inputs = (*files.values(), *(part.features.directory for part in self.data if part.features.directory))
        return _on_main(accelerator, lambda: self.folder.claim(fingerprint(cfg, files, accelerator.num_processes),
                                                                 cfg.train.resume, cfg.train.overwrite, inputs))

    def _part(self, data: TaskData) -> Part:
        sets = task_datasets(self.cfg, data.task, self.tokenizer, data.features,
                             {split: (data.records[split], data.instructions[split]) for split in SPLITS})
        loaders = {split: decode_loader(sets[split], self.cfg.decode.batch_size) for split in ("dev", "test")}
        return Part(data.task, sets, loaders)

    def _total_steps(self, loader: DataLoader) -> int:
        train = self.cfg.train
        # Each process gets every num_processes-th batch (accelerate evens out the last round).
        batches_per_process = math.ceil(len(loader) / self.accelerator.num_processes)
        steps = train.epochs * math.ceil(batches_per_process / train.gradient_accumulation_steps)
        return min(steps, train.max_steps) if train.max_steps else steps

    def _scheduler(self, optimizer: torch.optim.Optimizer):
        # accelerate steps a prepared scheduler num_processes times per optimizer step (split_batches=False),
        # also under DeepSpeed, which is handed only schedulers of its own kinds.
        processes = self.accelerator.num_processes
        return get_scheduler("linear", optimizer,
                             num_warmup_steps=int(self.cfg.train.warmup_ratio * self.total_steps) * processes,
                             num_training_steps=self.total_steps * processes)

    def _prepare(self, model, optimizer, loader, scheduler) -> None:
        eval_loaders = [part.loaders[split] for part in self.parts for split in ("dev", "test")]
        if self.accelerator.state.deepspeed_plugin:
            fill_deepspeed_config(self.accelerator.state.deepspeed_plugin, self.cfg)
        self.model, self.optimizer, self.train_loader, self.scheduler, *eval_loaders = self.accelerator.prepare(
            model, optimizer, loader, scheduler, *eval_loaders)
        for part, dev, test in zip(self.parts, eval_loaders[::2], eval_loaders[1::2]):
            part.loaders = {"dev": dev, "test": test}
        self.accelerator.register_for_checkpointing(self.state)
        if self.cfg.peft.method != PeftMethod.NONE:
            self.accelerator.register_save_state_pre_hook(_keep_trainable)

    def _restore_or_start(self, resume_from: Path | None) -> None:
        accelerator = self.accelerator
        if resume_from:
            # Adapter checkpoints lack the frozen base (DeepSpeed's engine loads its own checkpoints).
            strict = {"strict": self.cfg.peft.method == PeftMethod.NONE} if accelerator.state.deepspeed_plugin is None else {}
            accelerator.load_state(str(resume_from), **strict)
            accelerator.print(f"resumed from {resume_from} at step {self.state.completed_steps}")
            self.log.resume(self.state.completed_steps)
        elif accelerator.is_main_process:
            with atomic_folder(self.out / "tokenizer") as tmp:  # a resume must never read half a tokenizer
                self.tokenizer.save_pretrained(tmp)
            self.log.start()
        if accelerator.is_main_process:
            with atomic_write(self.out / "genie.yaml") as handle:
                yaml.safe_dump(self.cfg.to_dict(), handle, sort_keys=False)

    def _announce(self) -> None:
        say = self.accelerator.print
        for part in self.parts:
            say(f"{part.task.name}: " + " / ".join(f"{len(part.sets[s])} {s}" for s in SPLITS))
        for part in self.parts:
            for split, dataset in part.sets.items():
                context = dataset.targets.context_report(dataset.records, dataset.instructions)
                if context["with_context"]:
                    sources = ", ".join(f"{k} {v}" for k, v in context["sources"].items())
                    say(f"{part.task.name} {split}: context read for {context['with_context']} records ({sources}), "
                        f"cut to fit in {context['cut']}")
        for part in self.data:
            for report in part.skipped.values():
                say(f"{report['file']}: {report['skipped_lines']} bad line(s) skipped "
                      f"(data.on_bad_line=skip); the first: {report['first_skipped']}")
        size = sum(getattr(p, "ds_numel", p.numel()) for p in self.model.parameters())  # ZeRO-3 partitions weights
        say(f"{size:,} parameters, {self.total_steps} steps, {self.accelerator.num_processes} process(es)")

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
                origins = {part.task.name: read_manifest(part.features.directory) for part in self.data}
                (tmp / ORIGINS).write_text(json.dumps(origins, indent=2))  # which detector made the regions
                save_labels(tmp, [part.task for part in self.data])
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
        metrics["text_only"] = any(part.features.text_only for part in self.data)
        metrics["skipped_steps"] = self.state.skipped_steps
        skipped = {f"{part.task.name}/{split}": report for part in self.data for split, report in part.skipped.items()}
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


def train_loader(cfg: GenieConfig, sets: list[GenieDataset], collate: Collator) -> DataLoader:
    """Batches of the tasks' train sets: shuffled (or temperature-sampled across tasks) each
    epoch, and grouped by length with `data.group_by_length=true`."""
    sizes = [len(s) for s in sets]
    order = (TemperatureSampler(sizes, cfg.data.temperature, cfg.train.seed) if cfg.data.sampling == "temperature"
             else EpochShuffle(sum(sizes), cfg.train.seed))
    if cfg.data.group_by_length:
        batches = LengthGroupedBatches(order, [n for s in sets for n in s.lengths()], cfg.train.batch_size)
    else:
        batches = BatchSampler(order, cfg.train.batch_size, drop_last=False)
    # Its own generator: starting an epoch's iterator draws a seed from it, and drawing from the
    # global RNG instead would give a run resumed mid-epoch other dropout masks.
    return DataLoader(ConcatDataset(sets), batch_sampler=batches, collate_fn=collate,
                      num_workers=cfg.data.num_workers, persistent_workers=cfg.data.num_workers > 0,
                      generator=torch.Generator().manual_seed(cfg.train.seed))


def fill_deepspeed_config(plugin, cfg: GenieConfig) -> None:
    """The DeepSpeed config's "auto" values that accelerate cannot fill for genie: the batch size
    (genie's loaders batch by sampler) and clipping (accelerate would say 1.0, whatever
    train.max_grad_norm says). DeepSpeed clips inside its engine, so a number there must agree."""
    config, train = plugin.deepspeed_config, cfg.train
    if plugin.is_auto("train_micro_batch_size_per_gpu"):
        config["train_micro_batch_size_per_gpu"] = train.batch_size
    if plugin.is_auto("gradient_clipping"):
        config["gradient_clipping"] = train.max_grad_norm
    elif config.get("gradient_clipping", 1.0) != train.max_grad_norm:  # DeepSpeed's default is 1.0
        raise GenieError(f"the DeepSpeed config clips gradients at {config.get('gradient_clipping', 1.0)} and "
                         f"train.max_grad_norm is {train.max_grad_norm}: make them agree (\"auto\" follows genie)")


def build_optimizer(model: torch.nn.Module, cfg: GenieConfig) -> torch.optim.Optimizer:
    """AdamW over what trains; biases, norm weights and embeddings are not decayed (decay would
    only pull them toward zero: they scale and place features, they do not overfit by growing).
    Fused: one kernel over all parameters instead of a loop of small ones; on this 2-core CPU
    the step of a 100M-parameter model takes about a fifth of the loop's time."""
    kept = {id(p) for module in model.modules()
            if isinstance(module, torch.nn.Embedding) or "norm" in type(module).__name__.lower()
            for p in module.parameters(recurse=False)}
    groups: dict[bool, list] = {True: [], False: []}
    for parameter in model.parameters():
        if parameter.requires_grad:
            groups[parameter.ndim >= 2 and id(parameter) not in kept].append(parameter)
    return torch.optim.AdamW([{"params": groups[True], "weight_decay": cfg.train.weight_decay},
                              {"params": groups[False], "weight_decay": 0.0}], lr=cfg.train.learning_rate,
                             fused=True)


def _on_main(accelerator: Accelerator, action: Callable[[], T]) -> T:
    """`action` on the main process, its result (or GenieError) handed to every process, so all
    of them go on or stop together."""
    outcome: list = [None]
    if accelerator.is_main_process:
        try:
            outcome = [(action(), None)]
        except GenieError as exc:
            outcome = [(None, (exc.problem, exc.path))]
    value, error = broadcast_object_list(outcome)[0]
    if error:
        raise GenieError(*error)
    return value


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
        last = _latest(checkpoints)
        raise GenieError(f"{where}: a NaN or inf loss or gradient; stopped before it reached the weights "
                         f"(last checkpoint: {last or 'none'}; train.on_nonfinite=skip skips such steps)")
    state.skipped_steps += 1
    if accelerator.is_main_process:
        tqdm.write(f"{where}: a NaN or inf loss or gradient; the step is skipped ({state.skipped_steps} so far)")




def _keep_trainable(models: list, weights: list[dict], _output_dir: str) -> None:
    """With adapters, checkpoints hold only what trains: the frozen base is the pretrained model.
    (Under DeepSpeed `weights` is empty: the engine saves its own.)"""
    for k, model in enumerate(models[:len(weights)]):
        trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
        weights[k] = {key: value for key, value in weights[k].items() if key in trainable}


def _saved(checkpoints: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    return sorted(checkpoints.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))


def _latest(checkpoints: Path) -> Path | None:
    found = _saved(checkpoints)
    return found[-1] if found else None
