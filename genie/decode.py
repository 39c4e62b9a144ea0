"""Batched generation -> parsed records with boxes from the grounding head."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from genie.batching import SortedBatches
from genie.config import DecodeConfig, GenieConfig, load_config
from genie.data import Collator, GenieDataset
from genie.decode_journal import DecodeJournal, input_key
from genie.errors import GenieError
from genie.instructions import read_examples
from genie.records import BadLines, Record, write_records
from genie.run_setup import (
    feature_source,
    instructions_for,
    load_checkpoint,
    run_tasks,
    task_features_dir,
)
from genie.targets import make_targets
from genie.tasks import Task


def decode_loader(dataset: GenieDataset, batch_size: int) -> DataLoader:
    """Batches sorted by source length (`SortedBatches`); `predict` returns dataset order."""
    return DataLoader(dataset, batch_sampler=SortedBatches(dataset.lengths(with_targets=False), batch_size),
                      collate_fn=Collator(dataset.targets.tokenizer.pad_token_id))


def predict(accelerator: Accelerator, model, dataset: GenieDataset, loader: DataLoader, cfg: DecodeConfig,
            desc: str = "decode", on_batch=None) -> tuple[list[Record], Counter]:
    """Predicted records in dataset order, and counts of what the parser could not read.

    `loader` must be prepared by `accelerator`; each process decodes its shard and the
    records are gathered with `gather_for_metrics`, which drops the padding duplicates.
    `on_batch` gets each batch's gathered (index, record, counts) rows as they finish."""
    model.eval()
    core = accelerator.unwrap_model(model)
    collate = Collator(dataset.targets.tokenizer.pad_token_id)
    rows: list[tuple[int, Record, dict]] = []
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        sources = [dataset.records[i] for i in batch["index"].tolist()]
        outputs, generated = dataset.targets.generate(core, batch, sources, cfg)
        local = _records(core, dataset, collate, batch, sources, outputs, generated)
        # Per batch, as accelerate requires: it drops the last batch's padding duplicates.
        gathered = accelerator.gather_for_metrics(local, use_gather_object=True)
        rows.extend(gathered)
        if on_batch is not None:
            on_batch(gathered)
    total: Counter = Counter()
    for _, _, stats in rows:
        total.update(stats)
    return [record for _, record, _ in sorted(rows, key=lambda row: row[0])], total


def _records(model, dataset: GenieDataset, collate: Collator, batch: dict, sources: list[Record], outputs: list,
             generated: list[dict]) -> list[tuple[int, Record, dict]]:
    """(dataset index, predicted record, parser and generation counts) for each example of the batch."""
    parsed = [dataset.targets.parse(output, source) for output, source in zip(outputs, sources)]
    boxes = _ground(model, dataset, collate, batch, outputs, parsed)
    out = []
    for row, (index, source, p, counts) in enumerate(zip(batch["index"].tolist(), sources, parsed, generated)):
        stats = {"malformed": p.malformed, "unmatched": p.unmatched, "ungrounded_slots": 0, **counts}
        entities = [replace(e, boxes=[]) for e in p.entities]
        for slot, k in enumerate(p.slot_entities):
            box = boxes.get((row, slot))
            if box is None:  # said to be in the image, but no region could be chosen: kept as said
                stats["ungrounded_slots"] += 1
                entities[k].in_image = True
            else:
                entities[k].boxes = [box]
        out.append((index, Record(id=source.id, task=source.task, tokens=source.tokens, image_id=source.image_id,
                                  entities=entities, relations=p.relations,
                                  unreadable=p.malformed + p.unmatched), stats))
    return out


def _ground(model, dataset: GenieDataset, collate: Collator, batch: dict, outputs: list,
            parsed) -> dict[tuple[int, int], list[float]]:
    """Re-read each generated sequence teacher-forced and pick the argmax region per slot, among
    the image's real regions whose box has an area (a slot with none gets no box)."""
    if not dataset.targets.task.grounded or not any(p.slots for p in parsed):
        return {}
    items, keys = [], []
    for row, (output, p) in enumerate(zip(outputs, parsed)):
        labels, pools = dataset.targets.reread(output, p)
        slots = [(pool, None) for pool in pools if pool]
        keys.extend((row, s) for s, pool in enumerate(pools) if pool)
        items.append({"index": row, "labels": labels, "slots": slots})
    sub = collate.pad_targets(items)
    device = batch["input_ids"].device
    sub = {k: v.to(device) for k, v in sub.items()}
    sub["input_ids"], sub["attention_mask"] = batch["input_ids"], batch["attention_mask"]
    for key in ("region_features", "region_boxes", "region_mask", "word_starts", "word_mask"):
        if key in batch:
            sub[key] = batch[key]
    pixels = batch["region_pixel_boxes"]
    usable = batch["region_mask"] & (pixels[..., 2] > pixels[..., 0]) & (pixels[..., 3] > pixels[..., 1])
    example = sub["slot_example"]
    logits = model.region_logits(sub).float().masked_fill(~usable[example], float("-inf"))
    choice = logits.argmax(-1).tolist()
    boxes = {}
    for (row, slot), ex, region in zip(keys, example.tolist(), choice):
        if usable[ex, region]:
            boxes[(row, slot)] = [float(v) for v in pixels[ex, region].tolist()]
    return boxes


def model_folder(path: Path) -> Path:
    """The trained model in `path`: a run folder's best/, or the folder itself."""
    if (path / "best" / "genie.yaml").is_file():
        return path / "best"
    if (path / "genie.yaml").is_file() and not (path / "checkpoints").is_dir():
        return path
    raise GenieError("not a genie checkpoint, nor a run folder with a best/ one (a run writes best/ at its "
                     "first dev evaluation)", path)


def decode_file(checkpoint: Path, input_path: Path, output_path: Path, features_dir: str | None = None,
                overrides: list[str] = (), on_bad_line: str = "error") -> dict:
    """`genie decode`: a trained checkpoint folder + record (or instruction) JSONL -> prediction
    JSONL in input order. A multi-task model decodes each task's records with that task's parser.
    Killed, the same command resumes from `<output>.partial` (`DecodeJournal`). With
    `on_bad_line="skip"`, input lines that are not records are counted and left out."""
    checkpoint = model_folder(checkpoint)
    cfg = load_config(checkpoint / "genie.yaml", overrides)
    if features_dir:
        cfg = replace(cfg, features=replace(cfg.features, dir=features_dir))
    tasks = {task.name: task for task in run_tasks(cfg)}
    bad_lines = BadLines() if on_bad_line == "skip" else None
    records, given = read_examples(input_path, bad_lines)
    unknown = sorted({r.task for r in records} - set(tasks))
    if unknown:
        raise GenieError(f"records for task {unknown[0]}, which this model was not trained on "
                         f"({', '.join(tasks)})", input_path)
    accelerator = Accelerator(mixed_precision=cfg.train.mixed_precision)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = accelerator.prepare(load_checkpoint(checkpoint, cfg, next(iter(tasks.values()))))
    key = input_key(input_path, checkpoint, [*overrides, f"features={features_dir}", f"on_bad_line={on_bad_line}"])
    journal = DecodeJournal(output_path, key, write=accelerator.is_main_process)
    done = journal.done()
    accelerator.wait_for_everyone()  # every process has read it before the main one appends
    journal.start()
    predictions: list[Record | None] = [None] * len(records)
    stats: Counter = Counter()
    for index, (record, counts) in done.items():
        predictions[index] = record
        stats.update(counts)
    reports = {}
    started = time.perf_counter()
    for name in dict.fromkeys(r.task for r in records):
        rows = [i for i, r in enumerate(records) if r.task == name and i not in done]
        if not rows:
            continue
        preds, counts, reports[name] = _decode_task(
            accelerator, model, tokenizer, cfg, tasks[name], [records[i] for i in rows],
            [given[i] for i in rows] if given else None,
            on_batch=lambda got, rows=rows: journal.add([(rows[k], r, c) for k, r, c in got]))
        for i, pred in zip(rows, preds):
            predictions[i] = pred
        stats.update(counts)
    seconds = time.perf_counter() - started
    if accelerator.is_main_process:
        write_records(output_path, predictions)
        journal.finish()
    decoded = len(predictions) - len(done)
    return {"output": str(output_path), "records": len(predictions), **stats,
            "features": next(iter(reports.values())) if len(reports) == 1 else reports,
            **({"resumed_with": len(done)} if done else {}), **(bad_lines.report() if bad_lines else {}),
            "seconds": round(seconds, 2), "records_per_second": round(decoded / max(seconds, 1e-9), 1)}


def _decode_task(accelerator: Accelerator, model, tokenizer, cfg: GenieConfig, task: Task, records: list[Record],
                 given: list[str] | None, on_batch) -> tuple[list[Record], Counter, dict]:
    """One task's records with its targets, features and instructions: predictions, parser
    counts and the feature report."""
    targets = make_targets(cfg.target_format, task, tokenizer, cfg.model.max_source_length,
                           cfg.model.max_target_length)
    features = feature_source(cfg, task_features_dir(cfg, task))
    features.check(r.image_id for r in records)
    instructions = instructions_for(cfg, task, records, given)
    dataset = GenieDataset(records, targets, features, cfg.features.zero, instructions)
    loader = accelerator.prepare(decode_loader(dataset, cfg.decode.batch_size))
    preds, counts = predict(accelerator, model, dataset, loader, cfg.decode, desc=f"decode {task.name}",
                            on_batch=on_batch)
    return preds, counts, features.report()
