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
from collections.abc import Callable
from dataclasses import dataclass, replace
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

from genie.batching import EpochShuffle, LengthGroupedBatches
from genie.config import GenieConfig
from genie.data import Collator, GenieDataset
from genie.decode import decode_loader, predict
from genie.errors import GenieError
from genie.formats import make_targets
from genie.io import atomic_folder, atomic_write, install, staging
from genie.modeling import GenieModel
from genie.pipeline import (
    SPLITS,
    build_model,
    load_task_data,
    run_tasks,
    split_files,
    with_demo_features,
)
from genie.records import write_records
from genie.run_folder import Interrupted, RunFolder, default_output_dir, fingerprint
from genie.sampling import TemperatureSampler
from genie.tasks import Task

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class LoopState:
    """Where the loop is, saved with every checkpoint (accelerate `register_for_checkpointing`)."""

    epoch: int = 0
    step_in_epoch: int = 0
    completed_steps: int = 0
    best_metric: float = -1.0
    skipped_steps: int = 0  # optimizer steps left out for a NaN or inf (train.on_nonfinite=skip)

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
    out = Path(cfg.train.output_dir)
    accelerator = Accelerator(gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
                              mixed_precision=cfg.train.mixed_precision, project_dir=str(out),
                              # A batch without grounding slots leaves the grounding head out of the loss.
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    logging.getLogger("accelerate.utils.other").addFilter(_TiedEmbeddings())
    folder = RunFolder(out)
    _on_main(accelerator, folder.lock)
    try:
        return _run(accelerator, cfg, folder)
    except KeyboardInterrupt:
        raise Interrupted(out, _latest(out / "checkpoints") if folder.claimed else None) from None
    finally:
        folder.release()


def _run(accelerator: Accelerator, cfg: GenieConfig, folder: RunFolder) -> dict:
    out = folder.path
    accelerator.print(f"run folder: {out}")
    set_seed(cfg.train.seed)
    tasks = run_tasks(cfg)
    cfg = with_demo_features(cfg)  # saved with the model for decode
    with accelerator.main_process_first():  # the main process builds the demo, the others then read it
        data = [load_task_data(cfg, task) for task in tasks]
    if any(part.features.text_only for part in data):
        accelerator.print("text-only run: features.dir is unset, so the model sees no image (README, Text-only runs)")
    files = {f"{task.name}/{split}": path for task in tasks for split, path in split_files(cfg, task).items()}
    inputs = (*files.values(), *(part.features.directory for part in data if part.features.directory))
    claim = _on_main(accelerator, lambda: folder.claim(fingerprint(cfg, files, accelerator.num_processes),
                                                       cfg.train.resume, cfg.train.overwrite, inputs))
    if claim == "finished":
        accelerator.print(f"{out}: this run has finished (nothing trained); its test metrics:")
        return json.loads((out / "test_metrics.json").read_text(encoding="utf-8"))
    checkpoints = out / "checkpoints"
    resume_from = _latest(checkpoints) if claim == "resume" else None
    # A resumed tiny model must keep the vocabulary its checkpoint was trained with.
    saved_tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer") if resume_from else None
    tokenizer, model = build_model(cfg, data, saved_tokenizer)

    collate = Collator(tokenizer.pad_token_id)
    parts = []
    for part in data:
        targets = make_targets(cfg.target_format, part.task, tokenizer, cfg.model.max_source_length,
                               cfg.model.max_target_length)
        sets = {split: GenieDataset(part.records[split], targets, part.features, cfg.features.zero,
                                    part.instructions[split]) for split in SPLITS}
        loaders = {split: decode_loader(sets[split], cfg.decode.batch_size) for split in ("dev", "test")}
        parts.append(Part(part.task, sets, loaders))
    train_loader = _train_loader(cfg, [part.sets["train"] for part in parts], collate)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.learning_rate,
                                  weight_decay=cfg.train.weight_decay)
    # Each process gets every num_processes-th batch (accelerate evens out the last round).
    batches_per_process = math.ceil(len(train_loader) / accelerator.num_processes)
    steps_per_epoch = math.ceil(batches_per_process / cfg.train.gradient_accumulation_steps)
    total_steps = cfg.train.epochs * steps_per_epoch
    if cfg.train.max_steps:
        total_steps = min(total_steps, cfg.train.max_steps)
    # accelerate steps a prepared scheduler num_processes times per optimizer step (split_batches=False).
    scheduler = get_scheduler("linear", optimizer,
                              num_warmup_steps=int(cfg.train.warmup_ratio * total_steps) * accelerator.num_processes,
                              num_training_steps=total_steps * accelerator.num_processes)
    eval_loaders = [part.loaders[split] for part in parts for split in ("dev", "test")]
    model, optimizer, train_loader, scheduler, *eval_loaders = accelerator.prepare(
        model, optimizer, train_loader, scheduler, *eval_loaders)
    for part, dev, test in zip(parts, eval_loaders[::2], eval_loaders[1::2]):
        part.loaders = {"dev": dev, "test": test}
    state = LoopState()
    accelerator.register_for_checkpointing(state)
    adapters = cfg.peft.method != "none"
    if adapters:
        accelerator.register_save_state_pre_hook(_keep_trainable)

    if resume_from:
        # Adapter checkpoints lack the frozen base (DeepSpeed's engine loads its own checkpoints).
        strict = {"strict": not adapters} if accelerator.state.deepspeed_plugin is None else {}
        accelerator.load_state(str(resume_from), **strict)
        accelerator.print(f"resumed from {resume_from} at step {state.completed_steps}")
    elif accelerator.is_main_process:
        with atomic_folder(out / "tokenizer") as tmp:  # a resume must never read half a tokenizer
            tokenizer.save_pretrained(tmp)
    _save_config(accelerator, cfg, out)
    for part in parts:
        accelerator.print(f"{part.task.name}: " + " / ".join(f"{len(part.sets[s])} {s}" for s in SPLITS))
    for part in data:
        for report in part.skipped.values():
            accelerator.print(f"{report['file']}: {report['skipped_lines']} bad line(s) skipped "
                              f"(data.on_bad_line=skip); the first: {report['first_skipped']}")
    size = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())  # ZeRO-3 partitions weights
    accelerator.print(f"{size:,} parameters, {total_steps} steps, {accelerator.num_processes} process(es)")

    with tqdm(total=total_steps, initial=state.completed_steps, desc="train",
              disable=not accelerator.is_local_main_process) as progress:  # closed on an interrupt too
        while state.epoch < cfg.train.epochs and state.completed_steps < total_steps:
            model.train()
            train_loader.set_epoch(state.epoch)
            loader = train_loader
            if state.step_in_epoch:  # resumed mid-epoch: the batches already seen are skipped
                loader = accelerator.skip_first_batches(train_loader, state.step_in_epoch)
            dropped = False  # a NaN or inf in this optimizer step's batches: nothing of it is applied
            for batch in loader:
                with accelerator.accumulate(model):
                    losses = model(batch, cfg.train.grounding_weight)
                    finite = _all_finite(accelerator, losses["loss"])
                    if finite:
                        accelerator.backward(losses["loss"])
                    if finite and accelerator.sync_gradients:
                        finite = _all_finite(accelerator, accelerator.clip_grad_norm_(model.parameters(), 1.0))
                    if not finite and not dropped:
                        _nonfinite(accelerator, cfg, state, losses, checkpoints)
                    dropped = dropped or not finite
                    if not (dropped and accelerator.sync_gradients):
                        optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()  # also clears what a dropped step had accumulated
                state.step_in_epoch += 1
                if accelerator.sync_gradients:
                    dropped = False
                    state.completed_steps += 1
                    progress.update(1)
                    progress.set_postfix({name.removesuffix("_loss"): f"{value.item():.3f}"
                                          for name, value in losses.items()}, refresh=False)
                    every = cfg.train.checkpoint_every_steps
                    if every and state.completed_steps % every == 0:
                        _checkpoint(accelerator, folder, state, cfg.train.keep_checkpoints)
                    if state.completed_steps >= total_steps:
                        break
            state.epoch += 1
            state.step_in_epoch = 0
            if state.epoch % cfg.train.eval_every_epochs == 0 or state.completed_steps >= total_steps:
                scores = {part.task.name: _evaluate(accelerator, model, part, "dev", cfg)[0][part.task.headline]["f1"]
                          for part in parts}
                metric = sum(scores.values()) / len(scores)
                accelerator.print(f"epoch {state.epoch}: dev " + ", ".join(
                    f"{parts[k].task.headline} F1 {f1:.2f}" for k, f1 in enumerate(scores.values()))
                    + (f", mean {metric:.2f}" if len(parts) > 1 else ""))
                if metric > state.best_metric:
                    state.best_metric = metric
                    _save_best(accelerator, model, tokenizer, cfg, out)
            _checkpoint(accelerator, folder, state, cfg.train.keep_checkpoints)

    accelerator.wait_for_everyone()
    best = GenieModel.from_pretrained(out / "best")
    accelerator.unwrap_model(model).load_state_dict(best.state_dict())
    results, predictions = {}, []
    for part in parts:
        metrics, preds = _evaluate(accelerator, model, part, "test", cfg)
        results[part.task.name] = metrics
        predictions += preds
    if len(parts) == 1:
        metrics = results[parts[0].task.name]
    else:
        metrics = {**results, "mean": sum(results[p.task.name][p.task.headline]["f1"] for p in parts) / len(parts)}
    metrics["dev_best"] = state.best_metric
    metrics["text_only"] = any(part.features.text_only for part in data)
    metrics["skipped_steps"] = state.skipped_steps
    skipped = {f"{part.task.name}/{split}": report for part in data for split, report in part.skipped.items()}
    if skipped:
        metrics["skipped_lines"] = skipped
    if accelerator.is_main_process:
        write_records(out / "test_predictions.jsonl", predictions)
        with atomic_write(out / "test_metrics.json") as handle:
            json.dump(metrics, handle, indent=2)
    return metrics


def _train_loader(cfg: GenieConfig, sets: list[GenieDataset], collate: Collator) -> DataLoader:
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


def _evaluate(accelerator: Accelerator, model, part: Part, split: str, cfg: GenieConfig) -> tuple[dict, list]:
    """A task's metrics on a split (with parser and feature counts), and its predictions."""
    dataset = part.sets[split]
    preds, stats = predict(accelerator, model, dataset, part.loaders[split], cfg.decode, desc=f"{split} {part.task.name}")
    metrics = part.task.evaluate(dataset.records, preds)
    metrics["parser"] = dict(stats)
    features = dataset.features
    for seen, missing in gather_object([(features.seen, features.missing)]):  # each process read its shards
        features.merge(seen, missing)
    metrics["features"] = features.report()
    return metrics, preds


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


def _checkpoint(accelerator: Accelerator, folder: RunFolder, state: LoopState, keep: int) -> None:
    """save_state to a temporary folder, then rename: a kill mid-save leaves the last good one."""
    checkpoints = folder.path / "checkpoints"
    final = checkpoints / f"step_{state.completed_steps}"
    tmp = staging(final)  # every process writes its part there (atomic_folder is one process's)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        install(tmp, final)
        for old in _saved(checkpoints)[:-keep]:
            shutil.rmtree(old)
        folder.checkpointed()
    accelerator.wait_for_everyone()


def _save_best(accelerator: Accelerator, model, tokenizer, cfg: GenieConfig, out: Path) -> None:
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # on every process: under ZeRO-3 it gathers the shards
    if accelerator.is_main_process:
        with atomic_folder(out / "best") as tmp:
            accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=state)
            tokenizer.save_pretrained(tmp)
            (tmp / "genie.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    accelerator.wait_for_everyone()


def _save_config(accelerator: Accelerator, cfg: GenieConfig, out: Path) -> None:
    if accelerator.is_main_process:
        with atomic_write(out / "genie.yaml") as handle:
            yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)
