"""What genie reads from a seq2seq backbone, whatever its family.

T5 and BART keep their width in `d_model` and their decoder stack behind `get_decoder()`. An
encoder-decoder warm-started from two pretrained encoders (transformers' `EncoderDecoderModel`,
`model_type: encoder-decoder`, e.g. BERT2BERT) keeps its sizes in the encoder's and decoder's own
configs, and its `get_decoder()` is a causal LM whose stack sits under its LM head. These
functions give genie one answer for all of them."""

from __future__ import annotations

from genie.errors import GenieError

# The tiny-model sizes, and where a backbone's config keeps them (T5 / BART / BERT names).
SIZES = {"d_model": ("d_model", "hidden_size"), "layers": ("num_layers", "encoder_layers", "num_hidden_layers"),
         "heads": ("num_heads", "encoder_attention_heads", "num_attention_heads"),
         "d_ff": ("d_ff", "encoder_ffn_dim", "intermediate_size")}


def encoder_config(config):
    """The config that sizes the encoder: an encoder-decoder's `encoder`, else the config itself."""
    return config.encoder if config.model_type == "encoder-decoder" else config


def hidden_size(config) -> int:
    """The width genie's heads work in: the encoder's and the decoder's, which must agree."""
    if config.model_type != "encoder-decoder":
        return config.d_model
    widths = {config.encoder.hidden_size, config.decoder.hidden_size}
    if len(widths) > 1:
        raise GenieError(f"the encoder and decoder widths differ ({config.encoder.hidden_size} vs "
                         f"{config.decoder.hidden_size}): genie's heads read both in one width")
    return widths.pop()


def decoder_stack(backbone):
    """The decoder's layers without an LM head (an encoder-decoder's decoder is a causal LM)."""
    return backbone.get_decoder().base_model


def size(config, key: str) -> int | None:
    """A tiny-model size (`SIZES` key) as the backbone's config spells it, or None."""
    config = encoder_config(config)
    return next((getattr(config, name) for name in SIZES[key] if isinstance(getattr(config, name, None), int)), None)


def check_lengths(config, name: str, max_source_length: int, max_regions: int, max_target_length: int) -> None:
    """The source (text and regions) and the target must fit the positions a backbone with learned
    position embeddings has (BART 1024, BERT 512; T5's are relative: no limit)."""
    limit = getattr(encoder_config(config), "max_position_embeddings", None)
    decoder = config.decoder if config.model_type == "encoder-decoder" else config
    decoder_limit = getattr(decoder, "max_position_embeddings", None)
    if limit is not None and max_source_length + max_regions > limit:
        raise GenieError(f"{name} reads at most {limit} positions: model.max_source_length ({max_source_length}) + "
                         f"features.max_regions ({max_regions}) must not exceed it")
    if decoder_limit is not None and max_target_length > decoder_limit:
        raise GenieError(f"{name} writes at most {decoder_limit} positions: lower model.max_target_length "
                         f"({max_target_length})")
