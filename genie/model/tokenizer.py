"""Tokenizers trained on the spot for the tiny from-scratch models (no hub downloads):
sentencepiece for T5-style models, byte-level BPE (`tokenizers`) for BART-style."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, T5Tokenizer


def train_t5_tokenizer(texts: Iterable[str], vocab_size: int) -> T5Tokenizer:
    """Sentencepiece BPE pieces (read as a unigram vocabulary by T5Tokenizer), T5 special ids.

    character_coverage=1.0 keeps every character seen in training; characters never seen
    map to <unk>."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "spiece")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(list(texts)), model_prefix=prefix, vocab_size=vocab_size,
            model_type="bpe", character_coverage=1.0, hard_vocab_limit=False,
            normalization_rule_name="identity", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            minloglevel=2)
        processor = spm.SentencePieceProcessor(model_file=prefix + ".model")
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def train_bart_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with BART's special tokens and `<s> ... </s>` framing; lossless on any text."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")),
                                                      add_prefix_space=True, trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", pad_token="<pad>",
                                   eos_token="</s>", unk_token="<unk>", mask_token="<mask>")
