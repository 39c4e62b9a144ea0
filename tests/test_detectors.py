"""Region detectors: every family, saved at random and reloaded from its folder, keeps the Detections
contract (boxes in the image's own pixels, sorted scores, at most K), gives each image the same detections
alone or in a batch, and refuses user mistakes with one-line GenieErrors."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    BertConfig,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    DetrConfig,
    DetrImageProcessorPil,
)

from genie.errors import GenieError
from genie.regions.detectors import (
    Detections,
    _extents,
    _greedy_nms,
    _map_cells,
    _roi_means,
    load_detector,
)
from genie.regions.random_detectors import FAMILIES, save_random_detector

PROMPTS = {"grounding_dino": "A cat. a dog"}
GRID_FAMILIES = ("grid", "vit")
# Landscape, portrait and square, none the processors' own size: resizing and padding both show.
SIZES = ((160, 100), (70, 150), (120, 120))
K = 12


def picture(width: int, height: int, seed: int) -> Image.Image:
    """A few coloured rectangles on a coloured ground: structure for the random backbones to tell apart."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        corner = (x + int(rng.integers(5, width)), y + int(rng.integers(5, height)))
        draw.rectangle([x, y, *corner], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


IMAGES = [picture(w, h, seed) for seed, (w, h) in enumerate(SIZES)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The saved tiny detector of a family, built once per module on first use."""
    root = tmp_path_factory.mktemp("detectors")
    built = {}

    def get(family: str):
        if family not in built:
            built[family] = save_random_detector(family, root / family)
        return built[family]

    return get


def detector(folder, family: str, **options):
    return load_detector(folder(family), prompt=PROMPTS.get(family), **options)


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    return inter / (area[:, None] + area[None, :] - inter)


def assert_same(got: list[Detections], want: list[Detections]) -> None:
    for a, b in zip(got, want, strict=True):
        assert a.boxes.shape == b.boxes.shape
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_detections_keep_the_contract(folder, family):
    found = detector(folder, family, max_regions=K)
    settings = found.settings()
    assert json.loads(json.dumps(settings)) == settings
    assert settings["family"] == ("grid" if family in GRID_FAMILIES else family)
    for image, result in zip(IMAGES, found.detect(IMAGES), strict=True):
        width, height = image.size
        assert len(result.scores) == K  # every family has more than K candidates on these images
        assert result.boxes.shape == (K, 4) and result.features.shape == (K, found.dim)
        assert {a.dtype for a in (result.boxes, result.scores, result.features)} == {np.dtype(np.float32)}
        assert np.isfinite(result.features).all()
        x0, y0, x1, y1 = result.boxes.T
        assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= width).all() and (y1 <= height).all()
        assert ((x1 > x0) & (y1 > y0)).all()
        assert (np.diff(result.scores) <= 0).all()


@pytest.mark.parametrize(("family", "features"), list(itertools.product(FAMILIES, ("query", "roi"))))
def test_a_batch_detects_what_single_images_do(folder, family, features):
    found = detector(folder, family, features=features, max_regions=K)
    batch = found.detect(IMAGES)
    assert_same(batch, [found.detect([image])[0] for image in IMAGES])
    for again, first in zip(found.detect(IMAGES), batch, strict=True):  # and exactly the same on a rerun
        for field in ("boxes", "scores", "features"):
            np.testing.assert_array_equal(getattr(again, field), getattr(first, field))
    assert found.detect([]) == []


@pytest.mark.parametrize("family", FAMILIES)
def test_roi_features_are_the_last_stage_channels(folder, family):
    config = AutoConfig.from_pretrained(folder(family))
    backbone = getattr(config, "backbone_config", None)
    if backbone is None:  # ViT-style: the patch-token map is the last stage
        channels = getattr(config, "vision_config", config).hidden_size
    elif backbone.model_type == "swin":
        channels = backbone.embed_dim * 2 ** (len(backbone.depths) - 1)
    else:
        channels = backbone.hidden_sizes[-1]
    found = detector(folder, family, features="roi", max_regions=K)
    assert found.dim == channels
    assert all(result.features.shape == (K, channels) for result in found.detect(IMAGES))
    query = detector(folder, family, features="query", max_regions=K).detect(IMAGES[:1])[0]
    roi = found.detect(IMAGES[:1])[0]
    np.testing.assert_allclose(roi.boxes, query.boxes)  # the features mode changes features only
    if family not in GRID_FAMILIES:
        assert roi.features.shape != query.features.shape or not np.allclose(roi.features, query.features)


def test_roi_boxes_map_to_the_unpadded_part_of_the_feature_map():
    mask = torch.zeros(2, 128, 128, dtype=torch.long)
    mask[0, :80, :], mask[1] = 1, 1  # a 160 x 100 image resized to 128 x 80 on a 128 x 128 canvas; a square one
    extents = _extents({"pixel_mask": mask}, 2)
    torch.testing.assert_close(extents, torch.tensor([[1.0, 0.625], [1.0, 1.0]]))
    whole, right_half = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.5, 0.0, 1.0, 1.0]]), torch.Size((4, 4))
    torch.testing.assert_close(_map_cells(whole, extents[0], right_half),
                               torch.tensor([[0.0, 0.0, 4.0, 2.5], [2.0, 0.0, 4.0, 2.5]]))
    torch.testing.assert_close(_extents({}, 3), torch.ones(3, 2))


def test_roi_means_average_inside_the_box_and_never_come_out_empty():
    fmap = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    cells = torch.tensor([[0.0, 0.0, 4.0, 3.0], [1.0, 1.0, 3.0, 2.0], [2.2, 1.4, 2.3, 1.5], [3.9, 2.9, 4.0, 3.0],
                          [2.0, 1.0, 2.0001, 1.0001]])
    means = _roi_means(fmap, cells)
    torch.testing.assert_close(means[0], fmap.mean((1, 2)))
    torch.testing.assert_close(means[1], fmap[:, 1, 1:3].mean(1))
    torch.testing.assert_close(means[2], fmap[:, 1, 2])  # thinner than a cell: the cell it falls in
    torch.testing.assert_close(means[3], fmap[:, 2, 3])  # at the map's far corner
    torch.testing.assert_close(means[4], fmap[:, 1, 2])  # a sliver on a cell's corner: that cell


@pytest.mark.parametrize("family", ["detr", "yolos", "rt_detr", "rt_detr_v2"])
def test_boxes_and_scores_are_those_of_transformers_post_processing(folder, family):
    found = detector(folder, family, max_regions=K)
    image = IMAGES[0]
    inputs = found.processor(images=[image], return_tensors="pt")
    mask = {"pixel_mask": inputs["pixel_mask"]} if family == "detr" else {}
    with torch.no_grad():
        outputs = found.model(pixel_values=inputs["pixel_values"], **mask)
    theirs = found.processor.post_process_object_detection(outputs, threshold=0, target_sizes=[image.size[::-1]])[0]
    order = torch.sort(theirs["scores"], descending=True, stable=True).indices
    boxes, scores = theirs["boxes"][order].numpy(), theirs["scores"][order].numpy()
    _, first = np.unique(boxes, axis=0, return_index=True)  # RT-DETR lists a query once per class
    first = np.sort(first)
    boxes = np.clip(boxes[first], 0, np.array(image.size * 2))[:K]
    ours = found.detect([image])[0]
    np.testing.assert_allclose(ours.boxes, boxes, atol=1e-3)
    np.testing.assert_allclose(ours.scores, scores[first][:K], atol=1e-5)


SCORE_HEADS = {
    "detr": lambda model, states: model.class_labels_classifier(states).softmax(-1)[:, :-1].amax(-1),
    "yolos": lambda model, states: model.class_labels_classifier(states).softmax(-1)[:, :-1].amax(-1),
    "owlv2": lambda model, states: model.objectness_predictor(states).sigmoid(),
}


@pytest.mark.parametrize("family", SCORE_HEADS)
def test_query_features_are_the_states_the_boxes_were_read_from(folder, family):
    found = detector(folder, family, max_regions=K)
    result = found.detect(IMAGES[:1])[0]
    with torch.no_grad():
        scores = SCORE_HEADS[family](found.model, torch.from_numpy(result.features))
    np.testing.assert_allclose(scores.numpy(), result.scores, rtol=1e-4)


def test_owlv2_boxes_are_fractions_of_the_padded_square(folder):
    found = detector(folder, "owlv2", max_regions=100)
    image = IMAGES[0]
    square = Image.new("RGB", (image.width, image.width))  # what OWLv2's processor feeds for `image`
    square.paste(image)
    own, padded = found.detect([image, square])
    boxes = np.minimum(padded.boxes, [image.width, image.height] * 2)
    kept = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    np.testing.assert_allclose(own.boxes, boxes[kept], atol=1e-3)
    np.testing.assert_allclose(own.features, padded.features[kept], atol=1e-5)


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in GRID_FAMILIES])
def test_nms_drops_overlaps_before_the_cut(folder, family):
    plain = detector(folder, family, max_regions=100).detect(IMAGES)  # K above the candidates: all kept
    pruned = detector(folder, family, max_regions=100, nms_iou=0.3).detect(IMAGES)
    for before, after in zip(plain, pruned, strict=True):
        overlaps = iou_matrix(after.boxes)
        np.fill_diagonal(overlaps, 0)
        assert (overlaps <= 0.3 + 1e-6).all()
        assert len(after.scores) < len(before.scores)
    few = detector(folder, family, max_regions=3, nms_iou=0.3).detect(IMAGES)
    for short, full in zip(few, pruned, strict=True):  # K survivors of NMS, not NMS of the first K
        assert len(short.scores) == min(3, len(full.scores))
        np.testing.assert_allclose(short.boxes, full.boxes[:3], atol=1e-4)


def test_greedy_nms_keeps_the_best_of_each_overlapping_group():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    assert _greedy_nms(boxes, 0.5, limit=10).tolist() == [0, 2]
    assert _greedy_nms(boxes, 0.95, limit=10).tolist() == [0, 1, 2, 3]
    assert _greedy_nms(boxes, 0.5, limit=1).tolist() == [0]


@pytest.mark.parametrize("family", GRID_FAMILIES)
def test_grid_cells_tile_the_image_in_row_major_order(folder, family):
    found = detector(folder, family, max_regions=10)  # a 3 x 3 grid: the squarest with at most 10 cells
    for image, result in zip(IMAGES, found.detect(IMAGES), strict=True):
        width, height = image.size
        assert len(result.scores) == 9
        xs, ys = np.unique(result.boxes[:, [0, 2]]), np.unique(result.boxes[:, [1, 3]])
        assert len(xs) == len(ys) == 4 and xs[-1] == pytest.approx(width) and ys[-1] == pytest.approx(height)
        area = (result.boxes[:, 2:] - result.boxes[:, :2]).prod(1).sum()
        assert area == pytest.approx(width * height, rel=1e-5)
        order = np.lexsort((result.boxes[:, 0], result.boxes[:, 1]))
        assert order.tolist() == list(range(9))


def test_grid_reads_the_vision_tower_of_a_full_clip(tmp_path):
    layer = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    vision = {**layer, "image_size": 32, "patch_size": 8}
    config = CLIPConfig(text_config={**layer, "vocab_size": 99}, vision_config=vision)
    CLIPModel(config).save_pretrained(tmp_path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    found = load_detector(tmp_path, max_regions=4)
    assert (found.family, found.dim) == ("grid", 32)
    assert [result.features.shape for result in found.detect(IMAGES)] == [(4, 32)] * 3


def test_grounding_dino_reads_its_prompt(folder):
    cats = detector(folder, "grounding_dino", max_regions=K)
    assert cats.settings()["prompt"] == "a cat. a dog."  # as trained: lower case, phrases end in '.'
    cars = load_detector(folder("grounding_dino"), max_regions=K, prompt="car.")
    assert not np.allclose(cats.detect(IMAGES[:1])[0].features, cars.detect(IMAGES[:1])[0].features)


@pytest.mark.parametrize(("options", "problem"), [
    ({}, "give a prompt"),
    ({"prompt": "  "}, "give a prompt"),
])
def test_grounding_dino_needs_a_prompt(folder, options, problem):
    with pytest.raises(GenieError, match=problem):
        load_detector(folder("grounding_dino"), **options)


@pytest.mark.parametrize(("options", "problem"), [
    ({"prompt": "a cat."}, "Grounding DINO only"),
    ({"features": "pixels"}, "features must be one of query, roi"),
    ({"max_regions": 0}, "positive integer"),
    ({"max_regions": 2.5}, "positive integer"),
    ({"max_regions": True}, "positive integer"),
    ({"nms_iou": 1.5}, r"\[0, 1\]"),
])
def test_bad_options_are_refused(folder, options, problem):
    with pytest.raises(GenieError, match=problem):
        load_detector(folder("detr"), **options)


def test_an_unsupported_model_type_lists_the_supported(tmp_path):
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(GenieError, match="'bert' is not supported; supported: detr, rt_detr, .*grid mode"):
        load_detector(tmp_path)


def test_a_missing_folder_or_a_file_is_refused(tmp_path):
    with pytest.raises(GenieError, match="no such local folder"):
        load_detector(tmp_path / "no" / "such" / "detector")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(GenieError, match="not a file"):
        load_detector(tmp_path / "model.bin")


def test_a_folder_without_an_image_processor_is_refused(folder, tmp_path):
    for part in folder("detr").iterdir():
        if part.name != "preprocessor_config.json":
            (tmp_path / part.name).write_bytes(part.read_bytes())
    with pytest.raises(GenieError, match="cannot load the detector's AutoImageProcessor"):
        load_detector(tmp_path)


def test_a_timm_backbone_is_refused_with_the_revision_to_use(tmp_path):
    DetrConfig().save_pretrained(tmp_path)  # use_timm_backbone defaults to True, as on the Hub's main revision
    DetrImageProcessorPil().save_pretrained(tmp_path)
    save_file({"unused": torch.zeros(1)}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(GenieError, match=r"genie never installs timm .*--revision no_timm"):
        load_detector(tmp_path)


@pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1", reason="asks the Hub unless offline")
def test_an_uncached_hub_name_is_refused_offline():
    with pytest.raises(GenieError, match="not a model folder, nor a Hub model"):
        load_detector("genie-tests/no-such-detector")


def test_random_detector_refuses_unknown_families_and_sizes(tmp_path):
    with pytest.raises(GenieError, match="families: detr"):
        save_random_detector("faster_rcnn", tmp_path)
    with pytest.raises(GenieError, match="tiny, base"):
        save_random_detector("detr", tmp_path, size="huge")
