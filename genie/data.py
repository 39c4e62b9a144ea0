"""Examples for the model: tokenised source and target, regions, and grounding targets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import Dataset

from genie.eval.boxes import iou_matrix
from genie.records import Record
from genie.regions.npz import RegionFeatures
from genie.regions.source import FeatureSource

IOU_FLOOR = 0.5  # REFERENCE section 3: IoU <= 0.5 counts as no overlap


def grounding_target(regions: RegionFeatures, gold_boxes: list[list[float]]) -> np.ndarray:
    """Max IoU of each real region with the gold boxes, <= 0.5 zeroed, normalised to sum 1.
    All zero means the entity is not covered by any candidate region."""
    iou = np.zeros(len(regions.mask), np.float32)
    real = np.flatnonzero(regions.mask)
    if len(real) and gold_boxes:
        iou[real] = iou_matrix(regions.boxes[real], gold_boxes).max(axis=1)
    iou[iou <= IOU_FLOOR] = 0.0
    total = iou.sum()
    return iou / total if total > 0 else iou


def normalised_boxes(regions: RegionFeatures) -> np.ndarray:
    """(K, 5): xyxy divided by the image size, plus the area fraction; padding stays 0."""
    width, height = regions.image_size
    scale = np.array([width, height, width, height], np.float32)
    boxes = np.divide(regions.boxes, scale, out=np.zeros_like(regions.boxes), where=scale > 0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.concatenate([boxes, area[:, None]], 1) * regions.mask[:, None]


class GenieDataset(Dataset):
    """Records of one task's split, turned into model inputs lazily (features are read per
    item); `targets` is the run's target format (`genie.model.targets`), `instructions` the source
    prefix of each record (None: none). The tokenised text and grounding targets of an item
    never change, so they are computed once and kept: every later epoch only reads the regions."""

    def __init__(self, records: list[Record], targets, features: FeatureSource, zero_features: bool = False,
                 instructions: list[str] | None = None):
        self.records = records
        self.targets = targets
        self.features = features
        self.zero_features = zero_features
        self.instructions = instructions
        self._encoded: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.records)

    def lengths(self, with_targets: bool = True) -> list[int]:
        """Token lengths for batching: source plus gold target to train, the source to decode."""
        measure = self.targets.lengths if with_targets else self.targets.source_lengths
        return measure(self.records, self.instructions)

    def regions(self, record: Record) -> RegionFeatures:
        """The image's regions as the task has the model read them (`Task.regions`)."""
        regions = self.targets.task.regions(record, self.features.get(record.image_id))
        if self.zero_features:
            regions = replace(regions, features=np.zeros_like(regions.features))
        return regions

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        regions = self.regions(record)
        if index not in self._encoded:
            self._encoded[index] = self.encode(record, regions, self.instructions[index] if self.instructions else "")
        return {"index": index, **self._encoded[index],
                "region_features": regions.features, "region_boxes": normalised_boxes(regions),
                "region_mask": regions.mask, "region_pixel_boxes": regions.boxes,
                "region_given": np.arange(len(regions.mask)) < regions.given}

    def encode(self, record: Record, regions: RegionFeatures, instruction: str = "") -> dict:
        """Token ids, labels and grounding slots (decoder positions, region target) of a record."""
        targets = [grounding_target(regions, e.boxes) if e.boxes else None for e in record.entities]
        # An entity no candidate region covers is trained as not in the image (REFERENCE 3).
        groundable = [t is not None and t.sum() > 0 for t in targets]
        encoded = self.targets.encode(record, groundable, instruction)
        pools, slot_entities = encoded.pop("pools"), encoded.pop("slot_entities")
        return {**encoded, "slots": [(pool, targets[k]) for pool, k in zip(pools, slot_entities) if pool]}


REGION_KEYS = ("region_features", "region_boxes", "region_mask", "region_pixel_boxes", "region_given")


class Collator:
    """Dynamic padding; grounding slots flattened across the batch; word starts (index targets)
    padded with position 0 and masked. `multiple`: sources and labels padded to a multiple of it
    (8 in bf16/fp16 training, where matmul kernels tile by 8 or 16)."""

    def __init__(self, pad_token_id: int, multiple: int = 1):
        self.pad_token_id = pad_token_id
        self.multiple = multiple

    def __call__(self, items: list[dict]) -> dict:
        batch = self.pad_targets(items)
        batch["input_ids"], batch["attention_mask"] = _pad([it["input_ids"] for it in items], self.pad_token_id,
                                                           self.multiple)
        if "word_starts" in items[0]:
            starts, mask = _pad([it["word_starts"] for it in items], 0)
            batch["word_starts"], batch["word_mask"] = starts, mask.bool()
        for key in REGION_KEYS:
            if key in items[0]:
                batch[key] = torch.from_numpy(np.stack([it[key] for it in items]))
        if "region_mask" in batch:
            _cut_empty_regions(batch)
        return batch

    def pad_targets(self, items: list[dict]) -> dict:
        """Labels and slots only: also used to re-read generated sequences for grounding."""
        labels, _ = _pad([it["labels"] for it in items], -100, self.multiple)
        slots = [(i, pool, target) for i, it in enumerate(items) for pool, target in it["slots"]]
        pool = torch.zeros(len(slots), labels.shape[1])
        for s, (_, positions, _) in enumerate(slots):
            pool[s, positions] = 1.0 / len(positions)
        batch = {"index": torch.tensor([it["index"] for it in items]), "labels": labels, "slot_pool": pool,
                 "slot_example": torch.tensor([i for i, _, _ in slots], dtype=torch.long)}
        if all(target is not None for _, _, target in slots):
            width = len(items[0]["region_mask"]) if "region_mask" in items[0] else 0
            batch["slot_target"] = (torch.from_numpy(np.stack([t for _, _, t in slots])) if slots
                                    else torch.zeros(0, width))
        return batch


def _cut_empty_regions(batch: dict) -> None:
    """Cut the region slots no example of the batch fills (one is kept): a text-only run's ten
    masked slots were about 9 % of a MiniLM training step (docs/pretrained-backbones.md), and an
    image with few boxes pads every other. A masked slot is never attended to or grounded, so
    cutting it changes no result beyond float rounding."""
    filled = batch["region_mask"].any(0).nonzero()
    width = max(1, int(filled[-1]) + 1 if len(filled) else 0)
    for key in (*REGION_KEYS, "slot_target"):
        if key in batch and batch[key].dim() > 1:
            batch[key] = batch[key][:, :width]


def _pad(rows: list[list[int]], value: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    width = -(-max(len(r) for r in rows) // multiple) * multiple
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return ids, mask
