"""Batched generation -> parsed records with boxes from the grounding head."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from genie.config import DecodeConfig
from genie.data import Collator, GenieDataset
from genie.model.modeling import GenieModel
from genie.records import Record
from genie.training.batching import SortedBatches
from genie.training.distributed import Lockstep, lockstep_for


def decode_loader(dataset: GenieDataset, batch_size: int) -> DataLoader:
    """Batches sorted by source length (`SortedBatches`); `predict` returns dataset order."""
    return DataLoader(dataset, batch_sampler=SortedBatches(dataset.lengths(with_targets=False), batch_size),
                      collate_fn=Collator(dataset.targets.tokenizer.pad_token_id))


def predict(accelerator: Accelerator, model, dataset: GenieDataset, loader: DataLoader, cfg: DecodeConfig,
            desc: str = "decode") -> tuple[list[Record], Counter]:
    """Predicted records in dataset order, and counts of what the parser could not read.

    `loader` must be prepared by `accelerator`; each process decodes its shard and the
    records are gathered with `gather_for_metrics`, which drops the padding duplicates."""
    model.eval()
    # A plain model needs no unwrapping (accelerate's imports DeepSpeed, a second of a start, to check).
    core = model if isinstance(model, GenieModel) else accelerator.unwrap_model(model)
    lockstep = lockstep_for(accelerator)
    collate = Collator(dataset.targets.tokenizer.pad_token_id)
    rows: list[tuple[int, Record, dict]] = []
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        sources = [dataset.records[i] for i in batch["index"].tolist()]
        # Decoding calls the model's own methods, which accelerate's forward wrapper does not
        # reach: autocast here, so a bf16 run decodes in bf16 as it trained.
        with accelerator.autocast():
            with torch.inference_mode():
                encoded = core.encode(batch)  # once: generation and the grounding re-read share it
            instructions = [dataset.instructions[i] for i in batch["index"].tolist()] if dataset.instructions else None
            outputs, generated = dataset.targets.generate(core, batch, sources, cfg, encoded, lockstep, instructions)
            local = _records(core, dataset, collate, batch, sources, outputs, generated, encoded, lockstep)
        # Per batch, as accelerate requires: it drops the last batch's padding duplicates.
        gathered = accelerator.gather_for_metrics(local, use_gather_object=True)
        rows.extend(gathered)
    total: Counter = Counter()
    for _, _, stats in rows:
        total.update(stats)
    return [record for _, record, _ in sorted(rows, key=lambda row: row[0])], total


def _records(model, dataset: GenieDataset, collate: Collator, batch: dict, sources: list[Record], outputs: list,
             generated: list[dict], encoded, lockstep: Lockstep | None) -> list[tuple[int, Record, dict]]:
    """(dataset index, predicted record, parser and generation counts) for each example of the batch."""
    parsed = [dataset.targets.parse(output, source) for output, source in zip(outputs, sources)]
    boxes = _ground(model, dataset, collate, batch, outputs, parsed, encoded, lockstep)
    out = []
    for row, (index, source, p, counts) in enumerate(zip(batch["index"].tolist(), sources, parsed, generated)):
        stats = {"malformed": p.malformed, "unmatched": p.unmatched, "repeated": p.repeated, "ungrounded_slots": 0, **counts,
                 **_context_stats(dataset, index, source)}
        entities = [replace(e, boxes=[]) for e in p.entities]
        for slot, k in enumerate(p.slot_entities):
            box = boxes.get((row, slot))
            if box is None:  # said to be in the image, but no region could be chosen: kept as said
                stats["ungrounded_slots"] += 1
                entities[k].in_image = True
            else:
                entities[k].boxes = [box]
        # The source's input (tokens, image, context, given objects) is the prediction's too.
        out.append((index, replace(source, entities=entities, relations=p.relations,
                                   unreadable=p.malformed + p.unmatched), stats))
    return out


def _context_stats(dataset: GenieDataset, index: int, record: Record) -> dict:
    """A record the model read context for is counted, and so is one whose context was cut."""
    if not dataset.targets.context.pick(record):
        return {}
    instruction = dataset.instructions[index] if dataset.instructions else ""
    return {"with_context": 1, "context_cut": int(dataset.targets.encode_source(record, instruction)[2])}


def _ground(model, dataset: GenieDataset, collate: Collator, batch: dict, outputs: list,
            parsed, encoded, lockstep: Lockstep | None) -> dict[tuple[int, int], list[float]]:
    """Re-read each generated sequence teacher-forced over the generation's encoder states and pick
    the argmax region per slot, among the image's real regions whose box has an area (a slot with
    none gets no box). Under a `lockstep` every batch of a grounded task is re-read, with or
    without slots, so that every process runs the re-read."""
    if not dataset.targets.task.grounded or not (lockstep or any(p.slots for p in parsed)):
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
    for key in ("region_features", "region_boxes", "region_mask", "region_given", "word_starts", "word_mask"):
        if key in batch:
            sub[key] = batch[key]
    pixels = batch["region_pixel_boxes"]
    usable = batch["region_mask"] & (pixels[..., 2] > pixels[..., 0]) & (pixels[..., 3] > pixels[..., 1])
    example = sub["slot_example"]
    logits = model.region_logits(sub, encoded).float().masked_fill(~usable[example], float("-inf"))
    choice = logits.argmax(-1).tolist()
    boxes = {}
    for (row, slot), ex, region in zip(keys, example.tolist(), choice):
        if usable[ex, region]:
            boxes[(row, slot)] = [float(v) for v in pixels[ex, region].tolist()]
    return boxes
