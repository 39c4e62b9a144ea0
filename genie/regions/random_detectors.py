"""Randomly initialised detectors of every family `genie.regions.detectors` reads, built from configs alone.

There is no Hub here (tests, CI, offline benchmarks), so each family's checkpoint folder is made from a
config: "tiny" for fast tests (hidden size `dim`, a layer or two, images of 64-128 px), "base" for the family's
real default sizes (DETR-R50, RT-DETR-R50, ...) to measure speed. Weights are random; the folder
layout (config, weights, PIL image processor, tokenizer) is what `save_pretrained` writes for the real ones.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import (
    AutoModel,
    AutoModelForObjectDetection,
    AutoModelForZeroShotObjectDetection,
    BertConfig,
    BertTokenizer,
    CLIPImageProcessorPil,
    CLIPTokenizer,
    CLIPVisionConfig,
    DetrConfig,
    DetrImageProcessorPil,
    GroundingDinoConfig,
    GroundingDinoImageProcessorPil,
    Owlv2Config,
    Owlv2ImageProcessorPil,
    ResNetConfig,
    RTDetrConfig,
    RTDetrImageProcessorPil,
    RTDetrResNetConfig,
    RTDetrV2Config,
    SwinConfig,
    ViTConfig,
    ViTImageProcessorPil,
    YolosConfig,
    YolosImageProcessorPil,
)

from genie.errors import GenieError
from genie.io import atomic_folder
from genie.options import DetectorSize, check

# Shortest/longest edge of the tiny aspect-keeping processors: images are resized to 96-128 px.
TINY_EDGES = {"shortest_edge": 96, "longest_edge": 128}
TINY_QUERIES = 50
LABELS = {i: name for i, name in enumerate(("person", "cat", "dog", "car"))}
# Grounding DINO finds its text's special tokens by BERT-base ids ([CLS] 101, [SEP] 102, "." 1012, "?" 1029),
# so the tiny vocabulary keeps BERT's layout: ASCII symbols and lowercase letters from id 999 on.
BERT_SPECIAL = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
BERT_FIRST_CHAR = 999
WORDS = ("a", "an", "the", "person", "cat", "dog", "car", "object", "thing")


def _tiny_transformer(dim: int) -> dict:
    """Narrow DETR-family kwargs for a fast model. Two decoder layers, not one: RT-DETRv2 and Grounding DINO
    tie layer 0's box head to the later layers' and fail to build without a later layer."""
    return {"d_model": dim, "encoder_layers": 1, "decoder_layers": 2, "encoder_attention_heads": 2,
            "decoder_attention_heads": 2, "encoder_ffn_dim": 2 * dim, "decoder_ffn_dim": 2 * dim,
            "num_queries": TINY_QUERIES, "id2label": LABELS}


def _tiny_resnet(config_class: type) -> object:
    """A four-stage basic-block ResNet of 8-32 channels: stage 4 (32 channels) is the roi map."""
    return config_class(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic")


def _detr(size: str, dim: int) -> tuple:
    """DETR on transformers' own ResNet (not timm): ResNet-50 at base, 2048-d stage 4."""
    if size == "base":
        return DetrConfig(use_timm_backbone=False, id2label=LABELS), DetrImageProcessorPil()
    backbone = _tiny_resnet(ResNetConfig)
    backbone.out_features = ["stage4"]
    return (DetrConfig(use_timm_backbone=False, backbone_config=backbone, **_tiny_transformer(dim)),
            DetrImageProcessorPil(size=TINY_EDGES))


def _rt_detr(config_class: type, size: str, dim: int) -> tuple:
    """RT-DETR (v1 or v2): ResNet-50-vd at base; its processor squashes every image to one square."""
    if size == "base":
        return config_class(id2label=LABELS), RTDetrImageProcessorPil()
    backbone = _tiny_resnet(RTDetrResNetConfig)
    backbone.out_indices = [2, 3, 4]
    config = config_class(backbone_config=backbone, encoder_in_channels=backbone.hidden_sizes[1:],
                          encoder_hidden_dim=dim, decoder_in_channels=[dim] * 3, **_tiny_transformer(dim))
    return config, RTDetrImageProcessorPil(size={"height": 96, "width": 96})


def _yolos(size: str, dim: int) -> tuple:
    """YOLOS: a ViT whose detection tokens are the queries (ViT-Base at base)."""
    if size == "base":
        return YolosConfig(id2label=LABELS), YolosImageProcessorPil()
    config = YolosConfig(hidden_size=dim, num_hidden_layers=1, num_attention_heads=2, intermediate_size=2 * dim,
                         image_size=[96, 128], patch_size=16, num_detection_tokens=TINY_QUERIES, id2label=LABELS)
    return config, YolosImageProcessorPil(size=TINY_EDGES)


def _bert_vocab() -> dict[str, int]:
    """A BERT-layout WordPiece vocabulary: specials at BERT's ids, characters from 999, a few words after."""
    vocab = {BERT_SPECIAL.get(i, f"[unused{i}]"): i for i in range(BERT_FIRST_CHAR)}
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    for piece in chars + [f"##{c}" for c in chars if c.isalnum()] + list(WORDS):
        vocab[piece] = len(vocab)
    return vocab


def _grounding_dino(size: str, dim: int) -> tuple:
    """Grounding DINO: Swin-T + BERT-base at base; a one-layer BERT of width `dim` reads the prompt at tiny."""
    tokenizer = BertTokenizer(vocab=_bert_vocab())
    if size == "base":
        text = BertConfig(vocab_size=len(tokenizer))
        return (GroundingDinoConfig(text_config=text), GroundingDinoImageProcessorPil(), tokenizer)
    backbone = SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                          out_indices=[2, 3, 4])
    text = BertConfig(vocab_size=len(tokenizer), hidden_size=dim, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=2 * dim, max_position_embeddings=64)
    config = GroundingDinoConfig(backbone_config=backbone, text_config=text, max_text_len=32,
                                 **_tiny_transformer(dim))
    return config, GroundingDinoImageProcessorPil(size=TINY_EDGES), tokenizer


def _clip_tokenizer() -> CLIPTokenizer:
    """A byte-level BPE tokenizer without merges: every byte is a token, and a word-final variant of it."""
    alphabet = sorted(ByteLevel.alphabet())
    specials = ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(specials + alphabet + [f"{c}</w>" for c in alphabet])}
    return CLIPTokenizer(vocab=vocab, merges=[])


def _owlv2(size: str, dim: int) -> tuple:
    """OWLv2: ViT-B/16 at 960 px at base; its text tower is built too (the checkpoint needs it)."""
    tokenizer = _clip_tokenizer()
    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    if size == "base":
        config = Owlv2Config(text_config=ids, vision_config={"image_size": 960})
        return config, Owlv2ImageProcessorPil(), tokenizer
    layer = {"hidden_size": dim, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 2 * dim}
    config = Owlv2Config(text_config={**layer, **ids}, vision_config={**layer, "image_size": 64, "patch_size": 8},
                         projection_dim=dim)
    return config, Owlv2ImageProcessorPil(size={"height": 64, "width": 64}), tokenizer


def _vision_tower(config_class: type, processor_class: type, size: str, dim: int) -> tuple:
    """A plain vision tower for grid mode (CLIP ViT-B/32 or ViT-B/16 at 224 px at base)."""
    if size == "base":
        return config_class(), processor_class()
    config = config_class(hidden_size=dim, num_hidden_layers=1, num_attention_heads=2, intermediate_size=2 * dim,
                          image_size=64, patch_size=8)
    side = {"height": 64, "width": 64}
    if processor_class is CLIPImageProcessorPil:
        return config, processor_class(size={"shortest_edge": 64}, crop_size=side)
    return config, processor_class(size=side)


BUILDERS = {
    "detr": _detr,
    "rt_detr": lambda size, dim: _rt_detr(RTDetrConfig, size, dim),
    "rt_detr_v2": lambda size, dim: _rt_detr(RTDetrV2Config, size, dim),
    "yolos": _yolos,
    "grounding_dino": _grounding_dino,
    "owlv2": _owlv2,
    "grid": lambda size, dim: _vision_tower(CLIPVisionConfig, CLIPImageProcessorPil, size, dim),
    "vit": lambda size, dim: _vision_tower(ViTConfig, ViTImageProcessorPil, size, dim),
}
FAMILIES = tuple(BUILDERS)


def _build(config: object) -> torch.nn.Module:
    """The head `load_detector` loads: detection heads where there are some, the bare tower for grid mode."""
    if isinstance(config, (CLIPVisionConfig, ViTConfig)):
        return AutoModel.from_config(config)
    if isinstance(config, (Owlv2Config, GroundingDinoConfig)):
        return AutoModelForZeroShotObjectDetection.from_config(config)
    return AutoModelForObjectDetection.from_config(config)


def _spread(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Redraw the weights so that every query, box and score differs, as in a trained model.

    transformers' initialisation is a training start: zero detection tokens (YOLOS), near-zero heads (all
    boxes the image centre, all scores alike). Linear and conv weights get He's N(0, 2/fan_in), which keeps
    activations near unit scale through ReLU-like layers and makes attention sharp enough that queries
    differ; biases N(0, 0.1); free tensors such as tokens, queries and position tables N(0, 1). Norm layers
    and buffers stay as built.
    """
    with torch.no_grad():
        for module in model.modules():
            own = dict(module.named_parameters(recurse=False))
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                weight = own.pop("weight")
                weight.copy_(torch.randn(weight.shape, generator=generator) * math.sqrt(2 / weight[0].numel()))
            if "norm" in type(module).__name__.lower():
                continue
            for name, param in own.items():
                param.copy_(torch.randn(param.shape, generator=generator) * (0.1 if name == "bias" else 1.0))


def save_random_detector(family: str, out: Path, size: str = "tiny", dim: int = 64, seed: int = 0) -> Path:
    """Build a random `family` detector ("grid" is a CLIP vision tower, "vit" a ViT one) and save it,
    with its PIL image processor and any tokenizer, into `out` for `load_detector(out)` (an old
    folder there is replaced, and the weights are not left private as safetensors writes them)."""
    if family not in BUILDERS:
        raise GenieError(f"no random detector of family {family!r}; families: {', '.join(FAMILIES)}")
    check(DetectorSize, size, "size")
    config, processor, *tokenizer = BUILDERS[family](size, dim)
    model = _build(config)
    _spread(model, torch.Generator().manual_seed(seed))
    out = Path(out)
    with atomic_folder(out) as staged:
        model.save_pretrained(staged)
        processor.save_pretrained(staged)
        for part in tokenizer:
            part.save_pretrained(staged)
    return out
