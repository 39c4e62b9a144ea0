"""Region features from any Hugging Face object detector: the K best boxes of an image, each with a vector.

VinVL's features came from one Faster R-CNN; this module gets the same layout (boxes in the image's pixels,
one feature row per box) from DETR, RT-DETR(v2), YOLOS, Grounding DINO and OWLv2 checkpoints, or from a
plain vision tower cut into a grid of cells. Every family shares one selection: score, drop empty boxes,
optional class-agnostic NMS, top K, then either the box's own query state or the mean of the last backbone
stage inside the box.

An image's detections depend only on the image and the settings, never on its batch-mates: a batch is cut
into groups of images that the processor resized to one size, and each group runs unpadded (a convolution
or a ViT sees padding, whatever the mask says). So batching is a speed choice, not a change of output, and
each image gets exactly what transformers gives it alone.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForObjectDetection,
    AutoModelForZeroShotObjectDetection,
    AutoTokenizer,
    BatchFeature,
)
from transformers.backbone_utils import BackboneMixin

from genie.errors import GenieError
from genie.model.sources import model_source
from genie.options import DetectorFeatures, check
from genie.regions.images import BadImage

# config.model_type -> family; anything else with patch tokens is read in grid mode.
DETECTOR_FAMILIES = {"detr": "detr", "rt_detr": "rt_detr", "rt_detr_v2": "rt_detr_v2", "yolos": "yolos",
                     "grounding-dino": "grounding_dino", "owlv2": "owlv2"}
SOFTMAX_FAMILIES = ("detr", "yolos")  # their last class is "no object"; the others score each class by sigmoid
ZERO_SHOT_FAMILIES = ("grounding_dino", "owlv2")
CELL_EPS = 1e-3  # a box edge this close to a feature-cell edge counts as on it


@dataclass
class Detections:
    """One image's regions, best first."""

    boxes: np.ndarray  # (n, 4) float32, xyxy in pixels of the image as given, clipped to it; no zero-area box
    scores: np.ndarray  # (n,) float32, sorted descending
    features: np.ndarray  # (n, D) float32


@dataclass
class _Candidates:
    """One batched forward's candidate boxes, before each image's selection."""

    scores: torch.Tensor  # (B, Q) float64: probabilities that round to 1.0 in float32 still rank
    boxes: torch.Tensor  # (B, Q, 4) xyxy as fractions of each image's frame
    queries: torch.Tensor | None  # (B, Q, D): each candidate's own hidden state
    fmap: torch.Tensor | None  # (B, C, h, w): last backbone stage or patch-token map, for roi means

    def cpu(self) -> _Candidates:
        """Selection is cheap and per image: it runs on the CPU."""
        maps = (None if t is None else t.float().cpu() for t in (self.queries, self.fmap))
        return _Candidates(self.scores.double().cpu(), self.boxes.float().cpu(), *maps)


class RegionDetector:
    """A detection model and its PIL image processor; subclasses say how one forward yields candidates."""

    family: str
    dim: int

    def __init__(self, model: torch.nn.Module, processor, source: str, revision: str | None, family: str,
                 features: str, max_regions: int, nms_iou: float | None, prompt: str | None):
        self.model, self.processor, self.source, self.family = model.eval(), processor, source, family
        self.revision = revision
        self.features, self.max_regions, self.nms_iou, self.prompt = features, max_regions, nms_iou, prompt
        self.device = next(model.parameters()).device

    def settings(self) -> dict:
        """Everything that decides the output, so files of two different extractors are never mixed."""
        return {"model": self.source, "revision": self.revision, "model_type": self.model.config.model_type,
                "family": self.family,
                "features": self.features, "dim": self.dim, "max_regions": self.max_regions,
                "nms_iou": self.nms_iou, "prompt": self.prompt,
                "processor": json.loads(self.processor.to_json_string())}

    def prepare(self, image: Image.Image) -> BatchFeature:
        """One image's model input. BadImage when the processor cannot make one: an aspect-keeping resize
        of a banner (4000 x 20 px) rounds its short side to 0 px, and transformers raises ValueError."""
        try:
            return self.processor(images=[image], return_tensors="pt")
        except ValueError as exc:
            raise BadImage(f"the detector's image processor cannot resize {image.width}x{image.height} pixels "
                           f"({' '.join(str(exc).split())})") from None

    def detect(self, images: list[Image.Image], prepared: list[BatchFeature] | None = None) -> list[Detections]:
        """Detect in RGB images, one forward per group of images of one model-input size; boxes come back
        in each image's own pixels. `prepared`: the images' `prepare`d inputs, when the caller made them."""
        prepared = prepared if prepared is not None else [self.prepare(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, inputs in enumerate(prepared):
            groups.setdefault(tuple(inputs["pixel_values"].shape), []).append(i)
        found: list[Detections | None] = [None] * len(images)
        for members in groups.values():
            inputs = BatchFeature({key: torch.cat([prepared[i][key] for i in members]) for key in prepared[members[0]]})
            extents = _extents(inputs, len(members))
            with torch.inference_mode():
                candidates = self._candidates(inputs.to(self.device)).cpu()
            for b, i in enumerate(members):
                size = torch.tensor(images[i].size, dtype=torch.float32)
                found[i] = self._select(candidates, b, self._frame(size), extents[b], size)
        return found

    def _frame(self, size: torch.Tensor) -> torch.Tensor:
        """The (w, h) pixels of the image that the model's box fractions span: the image itself."""
        return size

    def _candidates(self, inputs) -> _Candidates:
        raise NotImplementedError

    def _select(self, found: _Candidates, b: int, frame: torch.Tensor, extent: torch.Tensor,
                size: torch.Tensor) -> Detections:
        """Image b's detections: clip to the image, drop empty boxes, sort, NMS, cut to K, then features."""
        scale = frame.repeat(2)
        boxes = (found.boxes[b] * scale).clamp(min=torch.zeros(4), max=size.repeat(2))
        index = torch.nonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).squeeze(1)
        index = index[torch.sort(found.scores[b, index], descending=True, stable=True).indices]
        if self.nms_iou is None:
            index = index[: self.max_regions]
        else:
            index = index[_greedy_nms(boxes[index], self.nms_iou, self.max_regions)]
        boxes = boxes[index]
        if self.features == DetectorFeatures.QUERY:
            features = found.queries[b, index]
        else:
            features = _roi_means(found.fmap[b], _map_cells(boxes / scale, extent, found.fmap.shape[-2:]))
        return Detections(_numpy(boxes), _numpy(found.scores[b, index]), _numpy(features))


class QueryDetector(RegionDetector):
    """DETR, RT-DETR(v2), YOLOS and Grounding DINO: a set of queries, each a box, class logits and a state."""

    def __init__(self, *args, text: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._text = text or {}
        accepted = inspect.signature(self.model.forward).parameters
        self._input_names = [name for name in ("pixel_values", "pixel_mask") if name in accepted]
        self._backbone = next((m for m in self.model.modules() if isinstance(m, BackboneMixin)), None)
        self._captured: dict[str, torch.Tensor] = {}
        if self.features == DetectorFeatures.ROI and self._backbone is not None:
            self._backbone.register_forward_hook(lambda _m, _i, out: self._captured.update(stage=out.feature_maps[-1]))
        config = self.model.config
        self.dim = self._backbone.channels[-1] if self.features == DetectorFeatures.ROI and self._backbone else config.hidden_size

    def _candidates(self, inputs) -> _Candidates:
        batch = len(inputs["pixel_values"])
        text = {name: value.expand(batch, -1).to(self.device) for name, value in self._text.items()}
        outputs = self.model(**{name: inputs[name] for name in self._input_names if name in inputs}, **text)
        logits = outputs.logits.double()
        if self.family in SOFTMAX_FAMILIES:
            scores = logits.softmax(-1)[..., :-1].amax(-1)
        else:
            scores = logits.sigmoid().amax(-1)
        queries = outputs.last_hidden_state[:, -logits.shape[1]:]
        fmap = None
        if self.features == DetectorFeatures.ROI:
            fmap = self._captured.pop("stage") if self._backbone else _patch_map(
                outputs.last_hidden_state[:, : -logits.shape[1]], inputs["pixel_values"], self.model.config)
        return _Candidates(scores, _corners(outputs.pred_boxes), queries, fmap)


class OwlDetector(RegionDetector):
    """OWLv2 without text: every image patch is a candidate, scored by the objectness head and boxed by
    the box head; its query feature is that patch's image embedding."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dim = self.model.config.vision_config.hidden_size

    def _frame(self, size: torch.Tensor) -> torch.Tensor:
        """OWLv2 pads each image to a square at its bottom right, and boxes are fractions of that square."""
        return size.max().repeat(2)

    def _candidates(self, inputs) -> _Candidates:
        embeds, _ = self.model.image_embedder(pixel_values=inputs["pixel_values"])
        patches = embeds.flatten(1, 2)
        scores = self.model.objectness_predictor(patches).double().sigmoid()
        boxes = _corners(self.model.box_predictor(patches, embeds))
        return _Candidates(scores, boxes, patches, embeds.permute(0, 3, 1, 2))


class GridDetector(RegionDetector):
    """A plain vision tower: its patch-token map cut into a near-square grid of at most K cells, row-major.
    Each cell's feature is the mean of its patch tokens, so "query" and "roi" are the same thing here."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.features = "roi"
        self.tower = getattr(self.model, "vision_model", self.model)
        self.vision = getattr(self.model.config, "vision_config", self.model.config)
        self.dim = self.vision.hidden_size

    def _candidates(self, inputs) -> _Candidates:
        pixels = inputs["pixel_values"]
        fmap = _patch_map(self.tower(pixel_values=pixels).last_hidden_state, pixels, self.vision)
        cells = _grid_cells(*fmap.shape[-2:], self.max_regions).to(fmap)
        boxes = cells.expand(len(pixels), -1, -1)
        return _Candidates(torch.ones(boxes.shape[:2], dtype=torch.float64), boxes, None, fmap)


def _corners(boxes: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x0, y0, x1, y1)."""
    center, half = boxes[..., :2], boxes[..., 2:] / 2
    return torch.cat([center - half, center + half], -1)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """Detections are float32 numpy, whatever the model ran in."""
    return tensor.detach().float().cpu().numpy()


def _extents(inputs, batch: int) -> torch.Tensor:
    """Per image, the (w, h) fraction of the model input that the image covers (the rest is padding)."""
    if "pixel_mask" not in inputs:
        return torch.ones(batch, 2)
    mask = inputs["pixel_mask"].bool()
    return torch.stack([mask.any(1).sum(1) / mask.shape[2], mask.any(2).sum(1) / mask.shape[1]], 1).float()


def _map_cells(fractions: torch.Tensor, extent: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """xyxy fractions of the frame -> xyxy in cells of an (h, w) map of which the frame covers `extent`."""
    h, w = shape
    return fractions * extent.repeat(2) * torch.tensor([w, h, w, h])


def _patch_map(tokens: torch.Tensor, pixels: torch.Tensor, config) -> torch.Tensor:
    """The trailing patch tokens of a ViT sequence (after any CLS/register tokens) as a (B, D, h, w) map."""
    patch = config.patch_size
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    h, w = pixels.shape[-2] // ph, pixels.shape[-1] // pw
    return tokens[:, -h * w:].unflatten(1, (h, w)).permute(0, 3, 1, 2)


def _grid_cells(h: int, w: int, max_cells: int) -> torch.Tensor:
    """Row-major xyxy fractions of a near-square grid of at most `max_cells` cells over an h x w patch map,
    cell edges on patch edges."""
    rows = min(math.isqrt(max_cells), h)
    cols = min(max_cells // rows, w)
    ys = torch.linspace(0, h, rows + 1).round() / h
    xs = torch.linspace(0, w, cols + 1).round() / w
    y0, x0 = torch.meshgrid(ys[:-1], xs[:-1], indexing="ij")
    y1, x1 = torch.meshgrid(ys[1:], xs[1:], indexing="ij")
    return torch.stack([x0, y0, x1, y1], -1).reshape(-1, 4)


def _roi_means(fmap: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Mean of `fmap` (C, h, w) over each box given in map cells (n, 4 xyxy). A box thinner than a cell
    takes the cell it falls in, so no mean is empty. Sums come from a summed-area table."""
    _, h, w = fmap.shape
    x0 = (cells[:, 0] + CELL_EPS).floor().clamp(0, w - 1).long()
    y0 = (cells[:, 1] + CELL_EPS).floor().clamp(0, h - 1).long()
    x1 = torch.maximum((cells[:, 2] - CELL_EPS).ceil().long(), x0 + 1).clamp(max=w)
    y1 = torch.maximum((cells[:, 3] - CELL_EPS).ceil().long(), y0 + 1).clamp(max=h)
    table = F.pad(fmap.double().cumsum(1).cumsum(2), (1, 0, 1, 0))
    sums = table[:, y1, x1] - table[:, y0, x1] - table[:, y1, x0] + table[:, y0, x0]
    return (sums / ((x1 - x0) * (y1 - y0))).T.float()


def _iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one xyxy box with each of `boxes` (none of zero area)."""
    inter = (torch.minimum(box[2:], boxes[:, 2:]) - torch.maximum(box[:2], boxes[:, :2])).clamp(min=0).prod(1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    return inter / (area + areas - inter)


def _greedy_nms(boxes: torch.Tensor, iou_max: float, limit: int) -> torch.Tensor:
    """Positions of the boxes (best first) that greedy class-agnostic NMS keeps: a box goes if its IoU with
    a kept better one exceeds `iou_max`. Stops at `limit` kept, as no more are wanted."""
    kept: list[int] = []
    for i in range(len(boxes)):
        if not kept or _iou(boxes[i], boxes[kept]).max() <= iou_max:
            kept.append(i)
            if len(kept) == limit:
                break
    return torch.tensor(kept, dtype=torch.long)


def _family(config) -> str:
    """The family that reads this config, or a GenieError naming the supported ones."""
    if config.model_type in DETECTOR_FAMILIES:
        return DETECTOR_FAMILIES[config.model_type]
    if hasattr(getattr(config, "vision_config", config), "patch_size"):
        return "grid"
    raise GenieError(f"model type {config.model_type!r} is not supported; supported: "
                     f"{', '.join(DETECTOR_FAMILIES)}, or a vision tower with patch tokens (grid mode: "
                     f"vit, clip_vision_model, ...)")


def _prompt_inputs(source: str | os.PathLike, prompt: str | None, config, revision: str | None) -> tuple[dict, str]:
    """Grounding DINO's tokenized prompt, in the form it was trained on: lower case, phrases ending in '.'."""
    if prompt is None or not prompt.strip():
        raise GenieError("Grounding DINO finds what a text prompt names: give a prompt, e.g. 'person. car.'")
    text = " ".join(prompt.lower().split())
    text = text if text.endswith(".") else text + "."
    tokens = _pretrained(AutoTokenizer, source, revision=revision)(text, return_tensors="pt", truncation=True,
                                                                   max_length=config.max_text_len)
    return dict(tokens), text


def _check_options(features: str, max_regions: int, nms_iou: float | None) -> None:
    """Refuse bad options before the (slow) model load."""
    check(DetectorFeatures, features, "features")
    if isinstance(max_regions, bool) or not isinstance(max_regions, int) or max_regions < 1:
        raise GenieError(f"the number of regions K must be a positive integer, not {max_regions!r}")
    if nms_iou is not None and not 0 <= nms_iou <= 1:
        raise GenieError(f"the NMS IoU threshold must lie in [0, 1], not {nms_iou!r}")


def _load_config(model: str | os.PathLike, revision: str | None):
    """The model's config from a save_pretrained folder or a Hub name (the local cache when offline)."""
    path = Path(model_source(str(model), "detector"))
    if path.exists() and not path.is_dir():
        raise GenieError("a detector is a model folder or a Hub name, not a file", path)
    try:
        config = AutoConfig.from_pretrained(model, revision=revision)
    except (OSError, ValueError) as exc:
        raise GenieError(f"not a model folder, nor a Hub model that can be had here (offline, only cached "
                         f"ones can): {exc}", model) from None
    if getattr(getattr(config, "backbone_config", None), "model_type", None) == "timm_backbone":
        raise GenieError("this checkpoint's backbone is a timm one, and genie never installs timm (it would replace "
                         "torch): use the revision with transformers' own ResNet (--revision no_timm)", model)
    return config


def _pretrained(loader, model: str | os.PathLike, **kwargs):
    """`loader.from_pretrained`, with a missing or unreadable part of the checkpoint, or one that needs a
    library genie does not install (a DETR saved with a timm backbone), as a GenieError."""
    try:
        return loader.from_pretrained(model, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        raise GenieError(f"cannot load the detector's {loader.__name__}: {exc}", model) from None


def load_detector(model: str | os.PathLike, features: str = "query", max_regions: int = 36,
                  nms_iou: float | None = None, prompt: str | None = None, device: str = "cpu",
                  revision: str | None = None) -> RegionDetector:
    """Load a detector by Hub name or folder; config.model_type decides the family.

    features: "query" (the box's own decoder/detection-token/patch state) or "roi" (the last backbone
    stage, or the patch-token map for ViTs, averaged inside the box). max_regions: K, the most boxes kept.
    nms_iou: class-agnostic NMS threshold, None for none. prompt: what Grounding DINO should find.
    revision: of a Hub model (e.g. "no_timm" for facebook/detr-resnet-50).
    """
    _check_options(features, max_regions, nms_iou)
    config = _load_config(model, revision)
    family = _family(config)
    source = str(Path(model).resolve()) if Path(model).is_dir() else str(model)
    if prompt is not None and family != "grounding_dino":
        raise GenieError(f"a prompt is read by Grounding DINO only, and {source} is {family}")
    processor = _pretrained(AutoImageProcessor, model, backend="pil", revision=revision)
    options = {"source": source, "revision": revision, "family": family, "features": features,
               "max_regions": max_regions, "nms_iou": nms_iou}
    if family == "grid":
        side = getattr(config, "vision_config", config).image_size
        height, width = (side, side) if isinstance(side, int) else side
        # The whole image, squashed to the tower's own size (a crop to it is then a no-op): cells must cover
        # the whole image.
        processor.size = {"height": height, "width": width}
        return GridDetector(_pretrained(AutoModel, model, revision=revision).to(device), processor, prompt=None,
                            **options)
    loader = AutoModelForZeroShotObjectDetection if family in ZERO_SHOT_FAMILIES else AutoModelForObjectDetection
    net = _pretrained(loader, model, revision=revision).to(device)
    if family == "owlv2":
        return OwlDetector(net, processor, prompt=None, **options)
    text = None
    if family == "grounding_dino":
        text, prompt = _prompt_inputs(model, prompt, config, revision)
    return QueryDetector(net, processor, prompt=prompt, text=text, **options)
