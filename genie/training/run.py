"""One training run from its config: `train` makes the loop's parts, in the run's order, and hands
them to a `Trainer` whole.

The order: the process's accelerator; the run folder locked; the seed; the tasks' data (the main
process builds a demo first); the folder claimed for exactly that data (a new run, a resume, or a
finished one); then tokenizer, model, loaders, optimizer and scheduler, `accelerator.prepare`, and
the last checkpoint's state on a resume. Loading the data claims nothing, so a bad file stops a
start before the folder is touched."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list, set_seed
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader
from transformers import AutoTokenizer, get_scheduler

from genie.config import GenieConfig
from genie.data import Collator, GenieDataset
from genie.errors import GenieError
from genie.inference.decode import decode_loader
from genie.io import atomic_folder, atomic_write
from genie.options import PeftMethod, Precision, Sampling, Tracker
from genie.tasks import Task
from genie.training.batching import EpochShuffle, LengthGroupedBatches
from genie.training.loop import Part, Trainer, latest_checkpoint
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
    split_files,
    task_datasets,
    with_demo_features,
)
from genie.training.sampling import TemperatureSampler
from genie.training.tracking import accelerator_kwargs, tracked_config

T = TypeVar("T")


class _TiedEmbeddings(logging.Filter):
    """accelerate warns at every `save_state` that it "Removed shared tensor" while saving: T5's and
    BART's input and output embeddings are one tied matrix, saved once and tied again on load."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


def train(cfg: GenieConfig) -> dict:
    """Train, select on dev, decode test with the best checkpoint; returns the test metrics
    (a multi-task run: each task's, and the mean of their headline F1). The run folder is locked
    for the run; Ctrl-C or SIGTERM raise `Interrupted`, naming the last checkpoint."""
    cfg = replace(cfg, train=replace(cfg.train, output_dir=cfg.train.output_dir or default_output_dir(cfg)))
    tasks = run_tasks(cfg)  # a wrong task name or format stops here, before a run folder exists
    check_model(cfg)  # and so does a mistyped model path, or a Hub name with no Hub to reach
    folder = RunFolder(cfg.train.output_dir)
    accelerator = run_accelerator(cfg, folder.path)
    on_main(accelerator, folder.lock)
    try:
        accelerator.print(f"run folder: {folder.path}")
        set_seed(cfg.train.seed)
        cfg, data = load_run_data(cfg, tasks, accelerator)
        claim = claim_folder(folder, cfg, data, accelerator)
        if claim == "finished":
            accelerator.print(f"{folder.path}: this run has finished (nothing trained); its test metrics:")
            return json.loads((folder.path / "test_metrics.json").read_text(encoding="utf-8"))
        trainer = assemble(cfg, data, accelerator, folder, resume=claim == "resume")
        trainer.fit()
        return trainer.test()
    except KeyboardInterrupt:
        last = latest_checkpoint(folder.path / "checkpoints") if folder.claimed else None
        raise Interrupted(folder.path, last) from None
    finally:
        accelerator.end_training()  # the trackers' files closed
        folder.release()


def run_accelerator(cfg: GenieConfig, out: Path) -> Accelerator:
    """The run's Accelerator: its precision, gradient accumulation, trackers and project folder."""
    accelerator = make_accelerator(
        cfg.train.mixed_precision, gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
        **accelerator_kwargs(cfg, out),
        # A batch without grounding slots leaves the grounding head out of the loss.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    logging.getLogger("accelerate.utils.other").addFilter(_TiedEmbeddings())
    return accelerator


def load_run_data(cfg: GenieConfig, tasks: list[Task], accelerator: Accelerator) -> tuple[GenieConfig, list[TaskData]]:
    """The tasks' records and features, and the config with the demo's feature folder filled in
    (saved with the model, for decode)."""
    cfg = with_demo_features(cfg)
    with accelerator.main_process_first():  # the main process builds the demo, the others then read it
        data = [load_task_data(cfg, task) for task in tasks]
    if any(part.features.text_only for part in data):
        accelerator.print("text-only run: features.dir is unset, so the model sees no image "
                          "(docs/training.md, Text-only runs)")
    return cfg, data


def claim_folder(folder: RunFolder, cfg: GenieConfig, data: list[TaskData], accelerator: Accelerator) -> str:
    """The run folder claimed for exactly these inputs (config, split files, process count):
    `new`, `resume` or `finished`, decided on the main process for all of them."""
    files = {f"{part.task.name}/{split}": path
             for part in data for split, path in split_files(cfg, part.task).items()}
    inputs = (*files.values(), *(part.features.directory for part in data if part.features.directory))
    return on_main(accelerator, lambda: folder.claim(fingerprint(cfg, files, accelerator.num_processes),
                                                     cfg.train.resume, cfg.train.overwrite, inputs))


def assemble(cfg: GenieConfig, data: list[TaskData], accelerator: Accelerator, folder: RunFolder,
             resume: bool) -> Trainer:
    """The Trainer over `data`: tokenizer and model (a resume keeps the vocabulary its checkpoint was
    trained with), datasets, loaders, optimizer and scheduler, prepared, at the last checkpoint's
    state when `resume`."""
    resume_from = latest_checkpoint(folder.path / "checkpoints") if resume else None
    saved_tokenizer = AutoTokenizer.from_pretrained(folder.path / "tokenizer") if resume_from else None
    tokenizer, model = build_model(cfg, data, saved_tokenizer)
    parts = [task_part(cfg, part, tokenizer) for part in data]
    multiple = 8 if cfg.train.mixed_precision != Precision.NO else 1
    loader = train_loader(cfg, [part.sets["train"] for part in parts], Collator(tokenizer.pad_token_id, multiple))
    optimizer = build_optimizer(model, cfg)
    total = total_steps(cfg, len(loader), accelerator.num_processes)
    scheduler = linear_schedule(optimizer, cfg, total, accelerator.num_processes)
    model, optimizer, loader, scheduler = prepare(accelerator, cfg, parts, model, optimizer, loader, scheduler)
    tracking = cfg.train.report_to != Tracker.NONE
    log = MetricsLog(folder.path, accelerator.is_main_process, accelerator.log if tracking else None)
    trainer = Trainer(cfg, accelerator, tokenizer, model, optimizer, scheduler, loader, parts, total, folder, log)
    start_or_resume(trainer, resume_from)
    if tracking:
        accelerator.init_trackers(folder.path.name, config=tracked_config(cfg))
    announce(trainer, data)
    return trainer


def task_part(cfg: GenieConfig, data: TaskData, tokenizer) -> Part:
    """A task's datasets over the run's targets, and its dev and test loaders."""
    sets = task_datasets(cfg, data.task, tokenizer, data.features,
                         {split: (data.records[split], data.instructions[split]) for split in SPLITS})
    return Part(data, sets, {split: decode_loader(sets[split], cfg.decode.batch_size) for split in ("dev", "test")})


def total_steps(cfg: GenieConfig, batches: int, processes: int) -> int:
    """Optimizer steps in the run: each process gets every `processes`-th of the epoch's `batches`
    (accelerate evens out the last round), and accumulates `gradient_accumulation_steps` of them."""
    train = cfg.train
    steps = train.epochs * math.ceil(math.ceil(batches / processes) / train.gradient_accumulation_steps)
    return min(steps, train.max_steps) if train.max_steps else steps


def linear_schedule(optimizer: torch.optim.Optimizer, cfg: GenieConfig, steps: int, processes: int):
    """Warmup then linear decay over `steps`. accelerate steps a prepared scheduler `processes` times
    per optimizer step (split_batches=False), also under DeepSpeed, which is handed only schedulers
    of its own kinds."""
    return get_scheduler("linear", optimizer, num_warmup_steps=int(cfg.train.warmup_ratio * steps) * processes,
                         num_training_steps=steps * processes)


def prepare(accelerator: Accelerator, cfg: GenieConfig, parts: list[Part], model, optimizer, loader, scheduler):
    """`accelerator.prepare` over the run's objects and the parts' dev and test loaders (replaced in
    `parts`); returns the prepared model, optimizer, train loader and scheduler."""
    eval_loaders = [part.loaders[split] for part in parts for split in ("dev", "test")]
    if accelerator.state.deepspeed_plugin:
        fill_deepspeed_config(accelerator.state.deepspeed_plugin, cfg)
    model, optimizer, loader, scheduler, *eval_loaders = accelerator.prepare(
        model, optimizer, loader, scheduler, *eval_loaders)
    for part, dev, test in zip(parts, eval_loaders[::2], eval_loaders[1::2]):
        part.loaders = {"dev": dev, "test": test}
    if cfg.peft.method != PeftMethod.NONE:
        accelerator.register_save_state_pre_hook(_keep_trainable)
    return model, optimizer, loader, scheduler


def start_or_resume(trainer: Trainer, resume_from: Path | None) -> None:
    """The loop state registered with the checkpoints; then the checkpoint's state loaded (and
    metrics.jsonl cut back to it), or a new run's tokenizer and log written; `genie.yaml` either way."""
    accelerator, cfg, out = trainer.accelerator, trainer.cfg, trainer.out
    accelerator.register_for_checkpointing(trainer.state)
    if resume_from:
        # Adapter checkpoints lack the frozen base (DeepSpeed's engine loads its own checkpoints).
        strict = {"strict": cfg.peft.method == PeftMethod.NONE} if accelerator.state.deepspeed_plugin is None else {}
        accelerator.load_state(str(resume_from), **strict)
        accelerator.print(f"resumed from {resume_from} at step {trainer.state.completed_steps}")
        trainer.log.resume(trainer.state.completed_steps)
    elif accelerator.is_main_process:
        with atomic_folder(out / "tokenizer") as tmp:  # a resume must never read half a tokenizer
            trainer.tokenizer.save_pretrained(tmp)
        trainer.log.start()
    if accelerator.is_main_process:
        with atomic_write(out / "genie.yaml") as handle:
            yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)


def announce(trainer: Trainer, data: list[TaskData]) -> None:
    """What the run trains on: split sizes, context read, bad lines skipped, size and steps."""
    say = trainer.accelerator.print
    for part in trainer.parts:
        say(f"{part.task.name}: " + " / ".join(f"{len(part.sets[s])} {s}" for s in SPLITS))
    for part in trainer.parts:
        for split, dataset in part.sets.items():
            context = dataset.targets.context_report(dataset.records, dataset.instructions)
            if context["with_context"]:
                sources = ", ".join(f"{k} {v}" for k, v in context["sources"].items())
                say(f"{part.task.name} {split}: context read for {context['with_context']} records ({sources}), "
                    f"cut to fit in {context['cut']}")
    for part in data:
        for report in part.skipped.values():
            say(f"{report['file']}: {report['skipped_lines']} bad line(s) skipped "
                f"(data.on_bad_line=skip); the first: {report['first_skipped']}")
    size = sum(getattr(p, "ds_numel", p.numel()) for p in trainer.model.parameters())  # ZeRO-3 partitions weights
    say(f"{size:,} parameters, {trainer.total_steps} steps, {trainer.accelerator.num_processes} process(es)")


def on_main(accelerator: Accelerator, action: Callable[[], T]) -> T:
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



def train_loader(cfg: GenieConfig, sets: list[GenieDataset], collate: Collator) -> DataLoader:
    """Batches of the tasks' train sets: shuffled (or temperature-sampled across tasks) each
    epoch, and grouped by length with `data.group_by_length=true`."""
    sizes = [len(s) for s in sets]
    order = (TemperatureSampler(sizes, cfg.data.temperature, cfg.train.seed) if cfg.data.sampling == Sampling.TEMPERATURE
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


def _keep_trainable(models: list, weights: list[dict], _output_dir: str) -> None:
    """With adapters, checkpoints hold only what trains: the frozen base is the pretrained model.
    (Under DeepSpeed `weights` is empty: the engine saves its own.)"""
    for k, model in enumerate(models[:len(weights)]):
        trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
        weights[k] = {key: value for key, value in weights[k].items() if key in trainable}
