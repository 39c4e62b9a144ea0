"""`genie/model/surface.py` with the tokenizers genie trains: they give every target back as written, so
text targets pass through untouched (the uncased MiniLM tokenizer's side: tests/test_minilm.py)."""

from __future__ import annotations

import pytest

from genie.demo import build_demo
from genie.model.surface import Surface
from genie.model.tokenizer import train_bart_tokenizer, train_t5_tokenizer
from genie.records import read_records
from genie.tasks import get_task

TRAINERS = {"t5": lambda texts: train_t5_tokenizer(texts, 300), "bart": lambda texts: train_bart_tokenizer(texts, 400)}


@pytest.mark.parametrize("kind", TRAINERS)
def test_targets_pass_through_a_lossless_tokenizer_untouched(kind, tmp_path):
    task = get_task("gmner")
    build_demo(tmp_path, task.demo, n_train=0, n_dev=0, n_test=60)
    records = read_records(tmp_path / "test.jsonl")
    targets = [task.linearize(r) for r in records]
    surface = Surface(TRAINERS[kind]([t.text for t in targets] + [" ".join(r.tokens) for r in records]))
    assert not surface.lossy
    for record, target in zip(records, targets):
        assert surface.escape(target.text, target.slots) == (target.text, target.slots)
        assert surface.restore(target.text, task, record) == target.text


def test_special_token_names_are_split_and_slots_follow():
    surface = Surface(train_bart_tokenizer(["a b c which is in the image <mask>"] * 5, 300))
    text = "Pak is a location <mask> Obama is a person, which is in the image"
    begin = text.index("which")
    escaped, slots = surface.escape(text, [(begin, begin + 5)])
    assert escaped == "Pak is a location < mask > Obama is a person, which is in the image"
    assert escaped[slots[0][0]:slots[0][1]] == "which"
