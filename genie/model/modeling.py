"""The model: a Hugging Face seq2seq backbone fed text plus projected image regions, and a
grounding head that scores the regions from the decoder states of a grounding phrase. Text
targets use the backbone's LM head; index targets its decoder with a pointer head."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.modeling_outputs import BaseModelOutput

from genie.config import ModelConfig, RegularizersConfig
from genie.config import PeftConfig as PeftSettings
from genie.errors import GenieError
from genie.grammar.index import Grammar
from genie.model.backbones import decoder_stack, hidden_size
from genie.model.pointer import PointerHead, constrained_search
from genie.model.sources import model_source
from genie.regularizers import Regularizers
from genie.training.distributed import Lockstep, gathered

TINY_MODELS = ("tiny-t5", "tiny-bart")
HEADS_FILE = "genie_heads.safetensors"
HEADS_CONFIG = "genie_heads.json"
# The encoder input a saved model was trained on. 1 (no "layout" key): regions after the batch's
# padded text; 2: each example's [text; regions; padding] (`packed_order`). A model trained on one
# and decoded on the other would silently score worse, so loading checks it.
LAYOUT = 2


class RegionEncoder(nn.Module):
    """Projects region features and their normalised boxes (x1, y1, x2, y2, area) to d_model.
    With `given_regions` (a run with a task given objects), a learned vector, starting at zero,
    marks the regions of objects given as input (`Record.objects`), so the model knows which
    object a record is about wherever its text ends. Only such models have it: one more
    parameter would move every other model's float sums, and its numbers, in the last bits."""

    def __init__(self, feature_dim: int, d_model: int, dropout: float, given_regions: bool = False):
        super().__init__()
        self.features = nn.Linear(feature_dim, d_model)
        self.boxes = nn.Linear(5, d_model)
        self.given = nn.Parameter(torch.zeros(d_model)) if given_regions else None
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, boxes: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        projected = self.features(features) + self.boxes(boxes)
        if self.given is not None and given is not None:
            projected = projected + given[..., None].to(projected.dtype) * self.given
        return self.dropout(self.norm(projected))


class GroundingHead(nn.Module):
    """Scaled dot product between a pooled decoder state and each region's encoder state."""

    def __init__(self, d_model: int):
        super().__init__()
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)

    def forward(self, queries: torch.Tensor, regions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("sd,skd->sk", self.query(queries), self.key(regions)) / queries.shape[-1] ** 0.5
        return scores.masked_fill(~mask, torch.finfo(scores.dtype).min)


class Encoded(NamedTuple):
    """The encoder's states of each example's [text tokens; regions; padding], their mask, the
    states of the regions alone (B, K, d), and the regularizer terms paid on the way (none
    without regularizers)."""

    states: torch.Tensor
    mask: torch.Tensor
    regions: torch.Tensor
    terms: dict[str, torch.Tensor]


def packed_order(text_lengths: torch.Tensor, text_width: int, regions: int) -> torch.Tensor:
    """(B, T + K) indices into [text (T, padded); regions (K)] that put each example's own text
    first, then its regions, then its text padding.

    An example's tokens and regions then sit at the same positions whatever the batch pads its
    text to, so its encoding (BART's absolute positions, T5's relative ones) and its predictions
    do not depend on the other examples of the batch; text keeps the positions a pretrained
    backbone gave it."""
    position = torch.arange(text_width + regions, device=text_lengths.device)[None, :]
    length = text_lengths[:, None]
    return torch.where(position < length, position,
                       torch.where(position < length + regions, text_width + position - length, position - regions))


class GenieModel(nn.Module):
    """`pointer_labels` > 0: index targets with that many special labels (a pointer head).
    `regularizers`: the optional MMIB / CAG terms (none when disabled)."""

    def __init__(self, backbone: PreTrainedModel, feature_dim: int, dropout: float = 0.1, pointer_labels: int = 0,
                 regularizers: RegularizersConfig | None = None, given_regions: bool = False):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        d_model = hidden_size(backbone.config)
        self.regions = RegionEncoder(feature_dim, d_model, dropout, given_regions)
        self.grounding = GroundingHead(d_model)
        self.pointer = None
        if pointer_labels:
            embeddings = backbone.get_input_embeddings().weight
            with gathered(embeddings):  # a pretrained backbone loaded under ZeRO-3 holds a slice of it
                init_std = float(embeddings.detach().std())
            self.pointer = PointerHead(d_model, pointer_labels, init_std)
        self.regularizers = Regularizers(d_model, regularizers) if regularizers and regularizers.enabled else None

    @property
    def regularizer_config(self) -> RegularizersConfig:
        """The regularizers' settings; the defaults (all off) without them."""
        return self.regularizers.cfg if self.regularizers else RegularizersConfig()

    @property
    def pointer_labels(self) -> int:
        """Special labels of the pointer head; 0 for a text-target model."""
        return self.pointer.num_labels if self.pointer else 0

    def encode(self, batch: dict) -> Encoded:
        text = self.backbone.get_input_embeddings()(batch["input_ids"])
        regions = self.regions(batch["region_features"].to(text.dtype), batch["region_boxes"].to(text.dtype),
                               batch.get("region_given"))
        terms = {}
        if self.regularizers is not None:
            text, regions, terms = self.regularizers(text, batch["attention_mask"].bool(), regions,
                                                     batch["region_mask"])
        text_mask = batch["attention_mask"]
        lengths = text_mask.sum(1)
        order = packed_order(lengths, text.shape[1], regions.shape[1])
        inputs = torch.cat([text, regions], 1).gather(1, order[..., None].expand(-1, -1, text.shape[-1]))
        mask = torch.cat([text_mask, batch["region_mask"].to(text_mask.dtype)], 1).gather(1, order)
        states = self.backbone.get_encoder()(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
        at = lengths[:, None] + torch.arange(regions.shape[1], device=lengths.device)
        return Encoded(states, mask, states.gather(1, at[..., None].expand(-1, -1, states.shape[-1])), terms)

    def ground(self, decoder_states: torch.Tensor, region_states: torch.Tensor, batch: dict) -> torch.Tensor:
        """Region logits (slots, K) for every grounding slot in the batch."""
        example = batch["slot_example"]
        pooled = torch.einsum("sl,sld->sd", batch["slot_pool"].to(decoder_states.dtype), decoder_states[example])
        return self.grounding(pooled, region_states[example], batch["region_mask"][example])

    def teacher_forced(self, batch: dict, encoder_states: torch.Tensor,
               mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced last decoder states (B, T, d) for `batch["labels"]`, and their loss."""
        if self.pointer is None:
            out = self.backbone(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states),
                                attention_mask=mask, labels=batch["labels"], output_hidden_states=True)
            return out.decoder_hidden_states[-1], out.loss
        labels = batch["labels"]
        words = self.words(batch, encoder_states)
        # Decoder position j is fed index j-1, as for text (labels shifted right).
        inputs = torch.cat([self.pointer.start(len(labels)),
                            self.pointer.inputs(labels[:, :-1].clamp(min=0), words)], 1)
        states = decoder_stack(self.backbone)(inputs_embeds=inputs, encoder_hidden_states=encoder_states,
                                             encoder_attention_mask=mask, use_cache=False).last_hidden_state
        logits = self.pointer.logits(states, words, batch["word_mask"])
        return states, F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)

    def words(self, batch: dict, encoder_states: torch.Tensor) -> torch.Tensor:
        """Per word (B, W, d), the mean of its first sub-token's embedding and encoder state,
        plus its position: what a pointer to it scores, and what the decoder reads after one
        (the encoder state carries the whole word, where a first sub-token may be ambiguous)."""
        starts = batch["word_starts"]
        embeds = self.backbone.get_input_embeddings()(batch["input_ids"].gather(1, starts))
        states = encoder_states.gather(1, starts[..., None].expand(-1, -1, encoder_states.shape[-1]))
        return self.pointer.positions((embeds + states) / 2)

    def forward(self, batch: dict, grounding_weight: float = 1.0, every_weight_in_loss: bool = False) -> dict:
        """The loss terms. The grounding head runs on every batch, also one without grounding slots,
        since under ZeRO-3 every process must run the same layers. `every_weight_in_loss`: its empty
        term is then part of the loss too, so that each process has a gradient (of zeros) for the
        head, as DeepSpeed needs; elsewhere it stays out, and the head is not stepped."""
        encoder_states, mask, region_states, terms = self.encode(batch)
        decoder_states, lm_loss = self.teacher_forced(batch, encoder_states, mask)
        losses = {"lm_loss": lm_loss}
        logits = self.ground(decoder_states, region_states, batch)
        if len(logits):
            # KL(target || softmax(scores)); masked regions have target 0 and finite logits.
            losses["grounding_loss"] = F.kl_div(F.log_softmax(logits.float(), -1), batch["slot_target"],
                                                reduction="batchmean")
        else:
            losses["grounding_loss"] = logits.float().sum() if every_weight_in_loss else lm_loss.new_zeros(())
        losses["loss"] = losses["lm_loss"] + grounding_weight * losses["grounding_loss"]
        if terms:
            losses.update(terms)
            losses["loss"] = losses["loss"] + self.regularizers.weighted(terms)
        return losses

    @torch.inference_mode()
    def generate(self, batch: dict, num_beams: int, max_new_tokens: int,
                 processors: Sequence[LogitsProcessor] = (), encoded: Encoded | None = None,
                 lockstep: Lockstep | None = None) -> torch.Tensor:
        """Greedy or beam search by genie's settings alone. `generate` fills every setting it is not
        given from the backbone's own generation config, so that config is set aside for the call
        (its special token ids kept): a checkpoint's no_repeat_ngram_size, forced end token or
        length penalty cannot change what genie decodes. `encoded`: the batch's `encode`, when the
        caller keeps it for grounding. `lockstep`: generation's own (`synced_gpus`) for ZeRO-3."""
        encoder_states, mask, _, _ = encoded or self.encode(batch)
        model = self.backbone.get_base_model() if adapted(self.backbone) else self.backbone
        own = model.generation_config
        model.generation_config = GenerationConfig(
            decoder_start_token_id=own.decoder_start_token_id, bos_token_id=own.bos_token_id,
            eos_token_id=own.eos_token_id, pad_token_id=own.pad_token_id, forced_bos_token_id=own.forced_bos_token_id)
        try:
            return self.backbone.generate(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states),
                                          attention_mask=mask, generation_config=GenerationConfig(
                                              num_beams=num_beams, do_sample=False, max_new_tokens=max_new_tokens),
                                          logits_processor=LogitsProcessorList(processors),
                                          synced_gpus=lockstep is not None)
        finally:
            model.generation_config = own

    @torch.inference_mode()
    def generate_indices(self, batch: dict, grammar: Grammar, num_beams: int, max_new_tokens: int,
                         encoded: Encoded | None = None, lockstep: Lockstep | None = None) -> list[list[int]]:
        """Grammar-constrained index sequences, decoded step by step with the decoder's KV cache.
        What a step reads per hypothesis (encoder states and mask, word vectors and mask) is
        kept beside the cache, and reordered with it when the hypotheses change. `lockstep`: for
        ZeRO-3 (`constrained_search`)."""
        encoder_states, mask, _, _ = encoded or self.encode(batch)
        per_hypothesis = [encoder_states, mask, self.words(batch, encoder_states), batch["word_mask"]]
        decoder, cache = decoder_stack(self.backbone), None

        def step(last: torch.Tensor | None) -> torch.Tensor:
            nonlocal cache
            states, states_mask, words, word_mask = per_hypothesis
            inputs = self.pointer.start(len(words)) if last is None else self.pointer.inputs(last[:, None], words)
            out = decoder(inputs_embeds=inputs, encoder_hidden_states=states, encoder_attention_mask=states_mask,
                          cache=cache, use_cache=True)
            cache = out.cache
            logits = self.pointer.logits(out.last_hidden_state[:, -1:], words, word_mask)
            return F.log_softmax(logits[:, 0].float(), -1)

        def reorder(parents: torch.Tensor) -> None:
            cache.reorder_cache(parents)
            per_hypothesis[:] = [kept.index_select(0, parents) for kept in per_hypothesis]

        return constrained_search(step, reorder, grammar, batch["word_mask"].sum(1), num_beams, max_new_tokens,
                                  lockstep)

    @torch.inference_mode()
    def region_logits(self, batch: dict, encoded: Encoded | None = None) -> torch.Tensor:
        """Teacher-force the given labels (a generated sequence) and score regions; `encoded`: the
        source's `encode` from generation, so the encoder does not run twice."""
        encoder_states, mask, region_states, _ = encoded or self.encode(batch)
        decoder_states, _ = self.teacher_forced(batch, encoder_states, mask)
        return self.ground(decoder_states, region_states, batch)

    def save_pretrained(self, directory: str | Path, state_dict: dict | None = None) -> None:
        """Backbone in Hugging Face layout (only the adapters, with LoRA); region encoder and
        grounding head beside it. `state_dict`: the weights to write (gathered under ZeRO-3)."""
        directory = Path(directory)
        state = self.state_dict() if state_dict is None else state_dict
        self.backbone.save_pretrained(directory, state_dict={k.removeprefix("backbone."): v for k, v in state.items()
                                                             if k.startswith("backbone.")})
        heads = {k: v.detach().cpu().contiguous() for k, v in state.items() if not k.startswith("backbone.")}
        save_file(heads, str(directory / HEADS_FILE))
        (directory / HEADS_CONFIG).write_text(json.dumps({
            "layout": LAYOUT, "feature_dim": self.feature_dim, "pointer_labels": self.pointer_labels,
            "regularizers": dataclasses.asdict(self.regularizer_config), "given_regions": self.regions.given is not None}))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "GenieModel":
        """A saved model; a LoRA one is its base model (named in the adapter config) plus adapters."""
        directory = Path(directory)
        config = json.loads((directory / HEADS_CONFIG).read_text())
        if config.get("layout", 1) != LAYOUT:
            raise GenieError(f"this model was trained on encoder input layout {config.get('layout', 1)} (1: regions "
                             f"after the batch's padded text) and this genie reads layout {LAYOUT}; retrain it",
                             directory)
        if (directory / "adapter_config.json").is_file():
            from peft import PeftConfig, PeftModel

            base = PeftConfig.from_pretrained(directory).base_model_name_or_path
            _, backbone = load_pretrained(base)
            backbone = PeftModel.from_pretrained(backbone, directory)
        else:
            backbone = AutoModelForSeq2SeqLM.from_pretrained(directory)
        model = cls(backbone, config["feature_dim"], pointer_labels=config.get("pointer_labels", 0),
                    regularizers=RegularizersConfig(**config.get("regularizers", {})),
                    given_regions=config.get("given_regions", False))
        missing, unexpected = model.load_state_dict(load_file(str(directory / HEADS_FILE)), strict=False)
        if unexpected or any(not k.startswith("backbone.") for k in missing):
            raise GenieError(f"genie heads do not fit the model (missing {missing}, unexpected {unexpected})", directory)
        return model


def is_genie_checkpoint(name: str) -> bool:
    return (Path(name) / HEADS_FILE).is_file()


def build_backbone(cfg: ModelConfig, tokenizer, max_positions: int) -> PreTrainedModel:
    """A randomly initialised tiny backbone (tiny-t5 / tiny-bart) sized by `cfg`."""
    if cfg.name == "tiny-t5":
        config = T5Config(vocab_size=len(tokenizer), d_model=cfg.d_model, d_kv=cfg.d_model // cfg.heads,
                          d_ff=cfg.d_ff, num_layers=cfg.layers, num_decoder_layers=cfg.layers,
                          num_heads=cfg.heads, dropout_rate=cfg.dropout, feed_forward_proj="relu",
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                          decoder_start_token_id=tokenizer.pad_token_id)
        return T5ForConditionalGeneration(config)
    config = BartConfig(vocab_size=len(tokenizer), d_model=cfg.d_model, encoder_layers=cfg.layers,
                        decoder_layers=cfg.layers, encoder_attention_heads=cfg.heads,
                        decoder_attention_heads=cfg.heads, encoder_ffn_dim=cfg.d_ff, decoder_ffn_dim=cfg.d_ff,
                        dropout=cfg.dropout, max_position_embeddings=max_positions,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
                        forced_bos_token_id=None, forced_eos_token_id=tokenizer.eos_token_id)
    return BartForConditionalGeneration(config)


def add_lora(model: GenieModel, cfg: PeftSettings) -> GenieModel:
    """Wrap the backbone in LoRA adapters: peft freezes its weights; genie's heads still train."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=cfg.target_modules or None)
    model.backbone = get_peft_model(model.backbone, lora)
    return model


def load_pretrained(name: str):
    """Tokenizer and backbone from a Hugging Face name or a local `save_pretrained` folder."""
    model_source(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        backbone = AutoModelForSeq2SeqLM.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise GenieError(f"cannot load model '{name}': {str(exc).splitlines()[0]}") from None
    return tokenizer, backbone


def adapted(backbone: nn.Module) -> bool:
    """Whether adapters wrap `backbone`. peft is imported only where adapters are made or loaded
    (half a second of every start otherwise), so a process that has not imported it has none."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(backbone, peft.PeftModel)
