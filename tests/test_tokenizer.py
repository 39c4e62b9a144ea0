"""The on-the-spot tokenizers keep the text a parser needs: what is encoded decodes back."""

from __future__ import annotations

import pytest

from genie.model.tokenizer import train_bart_tokenizer, train_t5_tokenizer

TEXTS = ["Pak is a location, which is in the image [SEP] Obama is a person, which is not in the image",
         "RT @user12 : love &amp ; #music http://t.co/ab12 with Obama in Pak (2)"] * 20


@pytest.mark.parametrize("trainer", [train_t5_tokenizer, train_bart_tokenizer])
def test_decode_of_encode_is_identity_on_seen_characters(trainer, tmp_path):
    tokenizer = trainer(TEXTS, 300)
    text = "Obama is a person, which is in the image [SEP] Pak (2) is a location, which is not in the image"
    ids = tokenizer(text)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == text
    tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path)(text)["input_ids"] == ids


def test_bart_tokenizer_is_lossless_on_unseen_characters():
    tokenizer = train_bart_tokenizer(TEXTS, 300)
    text = "Zürich 😀 ☃"
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True).strip() == text
