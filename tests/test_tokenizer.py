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


@pytest.mark.parametrize("trainer", [train_t5_tokenizer, train_bart_tokenizer])
def test_a_long_source_is_tokenized_from_a_prefix_with_the_same_window(trainer, monkeypatch):
    """A feed's long post is tokenized only as far as the model reads (`Targets.window_text`),
    with exactly the ids and offsets the whole text gives. A prefix that does not overflow the
    window (words a tokenizer drops, as BERT's drops control characters; here made by a prefix
    of one character per window token) is not used: the whole text is."""
    import random

    import genie.model.targets
    from genie.model.targets import make_targets, source_text
    from genie.records import Record
    from genie.tasks import get_task

    task, rng = get_task("mner"), random.Random(0)
    tokenizer = trainer(TEXTS, 300)
    targets = make_targets("text", task, tokenizer, 64, 64)
    vocabulary = [*" ".join(TEXTS).split(), "Zürich", "😀", "naïve", "\u200b"]
    for n, chars_per_token, prefix_used in [(20, 16, False), (5_000, 16, True), (5_000, 1, False)]:
        monkeypatch.setattr(genie.model.targets, "WINDOW_CHARS_PER_TOKEN", chars_per_token)
        record = Record("1", "mner", [rng.choice(vocabulary) for _ in range(n)], "")
        text = source_text(task, record)
        whole = tokenizer(text, truncation=True, max_length=64, return_offsets_mapping=True)
        ids, offsets, _ = targets.encode_source(record, offsets=True)
        assert (ids, offsets) == (whole["input_ids"], whole["offset_mapping"])
        assert targets.source_lengths([record]) == [len(whole["input_ids"])]
        assert (len(targets.window_text(text)) < len(text)) == prefix_used, (n, chars_per_token)
