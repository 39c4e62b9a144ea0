"""Constrained decoding of text targets (`decode.constrained`, genie/model/constrained.py): every
generated text parses whole, no gold target is ever forbidden, and the fast masking gives what
masking every disallowed token would, greedy and with beams, with both tiny tokenizers
(sentencepiece for T5, byte-level BPE for BART)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from demo_sets import small_demos, task_config
from transformers import LogitsProcessor

from genie.config import DecodeConfig
from genie.data import Collator, GenieDataset
from genie.grammar.text import AnyWriter
from genie.model.constrained import TextConstraint
from genie.model.targets import make_targets
from genie.records import Entity, Record, read_records
from genie.tasks import TASKS, get_task
from genie.tasks.mentions import NUMBER_TEXT
from genie.training.run_setup import build_model, load_task_data


class NoNumbers(AnyWriter):
    """A tokenizer that cannot write "(" or digits: mentions are never numbered."""

    def writable(self, word: str) -> bool:
        return not set(word) & set(NUMBER_TEXT)


class NoUmlaut(AnyWriter):
    def writable(self, word: str) -> bool:
        return "ü" not in word


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return small_demos(tmp_path_factory.mktemp("demos"), n_train=60, n_dev=20, n_test=20, feature_dim=16)


def accepts(task, record, text: str, writer=AnyWriter()) -> bool:
    grammar = task.text_grammar(record, writer)
    return grammar.accepts(grammar.read(grammar.start(), text.encode()))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_gold_target_of_the_demos_is_allowed(name, demos):
    task = get_task(name)
    for split in ("train", "dev", "test"):
        for record in read_records(demos / name / f"{split}.jsonl"):
            assert accepts(task, record, task.linearize(record).text), record.id


REAL = {  # (task, release folder under ../shared/datasets, split): every gold target of the test splits
    "gmner": "twitter-gmner/Twitter10000_v2.0", "mner": "twitter-mner/data/twitter2015", "mre": "mnre",
    "jmere": "mnre",
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_every_gold_target_of_the_real_test_splits_is_allowed(name, shared_datasets):
    task = get_task(name)
    records = get_task(name).builder(shared_datasets / REAL[name], "test").records
    refused = [r.id for r in records if not accepts(task, r, task.linearize(r).text)]
    assert not refused, refused[:5]


def walk(grammar, rng: random.Random, stop: float = 0.1) -> bytes:
    """A random text the grammar allows, byte by byte; every state it passes can still be ended."""
    states, out = grammar.start(), b""
    while True:
        options = sorted(b for b in grammar.following(states) if grammar.step(states, b))
        assert set(options) <= grammar.following(states)
        if grammar.accepts(states) and (not options or rng.random() < stop):
            return out
        assert options and grammar.to_finish(states) < math.inf, out  # never a dead end
        byte = rng.choice(options)
        states, out = grammar.step(states, byte), out + bytes((byte,))


@pytest.mark.parametrize("writer", [AnyWriter(), NoNumbers()], ids=["numbered", "never-numbered"])
@pytest.mark.parametrize("name", sorted(TASKS))
def test_whatever_the_grammar_allows_parses_whole(name, writer, demos):
    """Random texts through the grammar, including mentions named again ("Pak (2)", or with no
    numbers, only the occurrences still free): all parse with nothing malformed or unmatched."""
    task, rng = get_task(name), random.Random(0)
    for record in read_records(demos / name / "test.jsonl")[:12]:
        grammar = task.text_grammar(record, writer)
        for _ in range(2):
            text = walk(grammar, rng).decode()
            parsed = task.parse(text, record)
            assert parsed.malformed == parsed.unmatched == 0, text
            if not task.predicts_relations:  # an entity list is a set: no span named twice
                assert len({e.span for e in parsed.entities}) == len(parsed.entities), text
            triples = [(r.head, r.tail, r.type) for r in parsed.relations]
            assert len(set(triples)) == len(triples), text  # nor a triple written twice
            assert writer.writable("(") or "(" not in text


def test_a_word_the_tokenizer_cannot_write_is_in_no_mention_and_is_counted():
    task = get_task("gmner")
    record = Record("1", "gmner", ["Obama", "visits", "Zürich"], "img")
    assert task.text_grammar(record, NoUmlaut()).unwritable_words == 1
    assert accepts(task, record, "Obama is a person, which is not in the image", NoUmlaut())
    assert not accepts(task, record, "Zürich is a location, which is not in the image", NoUmlaut())
    assert accepts(task, record, "Zürich is a location, which is not in the image")


class BruteForce(LogitsProcessor):
    """The reference: every token checked against the grammar, at every step, on the text so far."""

    def __init__(self, constraint: TextConstraint):
        self.c = constraint

    def __call__(self, input_ids, scores):
        text, keep = self.c.text, torch.zeros_like(scores, dtype=torch.bool)
        for row, ids in enumerate(input_ids[:, 1:].tolist()):
            grammar = self.c.grammars[row // self.c.num_beams]
            if text.end in ids:
                keep[row] = True
                continue
            if len(ids) < len(text.prefix):
                keep[row, text.prefix[len(ids)]] = True
                continue
            states = grammar.read(grammar.start(), b"".join(text.pieces[i] or b"" for i in ids[len(text.prefix):]))
            left = self.c.max_new_tokens - len(ids) - 1
            for token, piece in enumerate(text.pieces):
                if piece and grammar.to_finish(grammar.read(states, piece)) <= left:
                    keep[row, token] = True
            keep[row, text.end] = grammar.accepts(states) or not keep[row].any()
        return scores.masked_fill(~keep, -math.inf)


def untrained(demos, name: str, backbone: str, seed: int = 0, extra: tuple[str, ...] = ()):
    """A random tiny model with text targets, its dev records and one batch of them."""
    torch.manual_seed(seed)
    task = get_task(name)
    cfg = task_config(name, [f"model.name={backbone}", "model.d_model=32", "model.heads=2",
                                                "model.d_ff=64", "features.dim=16", "model.vocab_size=300",
                                                "model.dropout=0.0", f"data.dir={demos / name}",
                                                f"features.dir={demos / name / 'features'}", *extra])
    part = load_task_data(cfg, task)
    records = part.records["dev"][:8]
    tokenizer, model = build_model(cfg, [part])
    targets = make_targets("text", task, tokenizer, cfg.model.max_source_length, cfg.model.max_target_length)
    dataset = GenieDataset(records, targets, part.features)
    batch = Collator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    return task, model.eval(), batch, records, targets


class Jitter(LogitsProcessor):
    """Noise fixed by each row's prefix: a random tiny model (whose tied embeddings make it repeat
    its last token) then wanders through the grammar, the same way in every run it is given."""

    def __call__(self, input_ids, scores):
        noise = [torch.randn(scores.shape[1], generator=torch.Generator().manual_seed(hash(tuple(ids)) % 2**31))
                 for ids in input_ids.tolist()]
        return scores + 4.0 * torch.stack(noise)


@pytest.mark.parametrize("backbone", ["tiny-t5", "tiny-bart"])
@pytest.mark.parametrize("name", sorted(TASKS))
def test_random_models_write_only_what_parses_and_match_masking_every_token(name, backbone, demos):
    """A random model, unconstrained, writes text the parser cannot read; constrained, it writes
    only text that parses whole and ends within the length budget, and exactly the sequences
    that checking every token at every step gives (greedy and 3 beams)."""
    task, model, batch, records, targets = untrained(demos, name, backbone)

    def texts(sequences):
        return targets.tokenizer.batch_decode(sequences, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    free = texts(model.generate(batch, 1, 24, [Jitter()]))
    assert sum(task.parse(text, r).malformed + task.parse(text, r).unmatched for text, r in zip(free, records)) > 0
    grammars = [task.text_grammar(r, targets.token_text) for r in records]
    for beams, budget in ((1, 32), (3, 32), (1, 12)):  # 12 tokens: about one clause, if any fits
        fast = TextConstraint(targets.token_text, grammars, beams, budget)
        sequences = model.generate(batch, beams, budget, [Jitter(), fast])
        slow = BruteForce(TextConstraint(targets.token_text, grammars, beams, budget))
        assert torch.equal(sequences, model.generate(batch, beams, budget, [Jitter(), slow]))
        assert fast.dead_ends == [0] * len(records)
        written = texts(sequences)
        assert budget < 32 or sum(bool(text.strip()) for text in written) >= len(records) // 2, written
        for text, record in zip(written, records):
            parsed = task.parse(text, record)
            assert parsed.malformed == parsed.unmatched == 0, (beams, budget, text)


def test_decoding_reports_what_it_could_not_write(demos):
    task, model, batch, records, targets = untrained(demos, "gmner", "tiny-t5")
    _, counts = targets.generate(model, batch, records, DecodeConfig(max_new_tokens=24))
    assert [c["unwritable_words"] for c in counts] == [sum(not targets.token_text.writable(w) for w in r.tokens)
                                                      for r in records]
    assert all(c["dead_ends"] == 0 for c in counts)
    _, counts = targets.generate(model, batch, records, DecodeConfig(max_new_tokens=24, constrained=False))
    assert counts == [{}] * len(records)  # no tweet is past the window here


def test_words_past_the_source_window_are_never_written_and_cut_posts_are_counted(demos):
    """The grammar offers only the words the model read: a random model pushed around the grammar
    names no word past the first model.max_source_length tokens."""
    task, model, batch, records, targets = untrained(demos, "mner", "tiny-t5", extra=("model.max_source_length=10",))
    generate = model.generate
    model.generate = lambda batch, beams, budget, processors, **kw: generate(batch, beams, budget,
                                                                            [Jitter(), *processors], **kw)
    texts, counts = targets.generate(model, batch, records, DecodeConfig(max_new_tokens=48))
    visible = [targets.visible_words(r) for r in records]
    assert any(n < len(r.tokens) for r, n in zip(records, visible))
    assert [c.get("truncated_posts", 0) for c in counts] == [int(n < len(r.tokens)) for r, n in zip(records, visible)]
    named = [(e.end, n) for text, r, n in zip(texts, records, visible) for e in task.parse(text, r).entities]
    assert named and all(end <= n for end, n in named), named


@pytest.mark.parametrize("backbone", ["tiny-t5", "tiny-bart"])
def test_token_texts_spell_every_target_and_decoding_keeps_the_tweets_spaces(backbone, demos):
    """What `TokenText` says each token writes, joined, is the target the tokenizer encoded (a
    leading space aside), and the decoded target reads back as the gold entities: spaces the
    tweet has before punctuation ("Pak .") are kept."""
    task, _, _, _, targets = untrained(demos, "gmner", backbone)
    text, dev = targets.token_text, read_records(demos / "gmner" / "dev.jsonl")
    word = dev[0].tokens[0]
    spaced = Record("x", "gmner", [word, ".", word, ",", "!"], "img", [Entity(0, 2, f"{word} .", "LOC"),
                                                                      Entity(2, 5, f"{word} , !", "PER")])
    for gold in [spaced, *dev]:
        target = task.linearize(gold).text
        ids = targets.tokenizer(target)["input_ids"]
        assert tuple(ids[:len(text.prefix)]) == text.prefix and ids[-1] == text.end
        assert b"".join(text.pieces[i] for i in ids[len(text.prefix):-1]).decode().strip() == target
        (decoded,) = targets.tokenizer.batch_decode([ids], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        parsed = task.parse(decoded, gold)
        assert [e.span for e in parsed.entities] == sorted(e.span for e in gold.entities), decoded


def test_a_checkpoints_own_generation_defaults_change_nothing(demos):
    """Decoding uses genie's settings: a backbone shipped with no_repeat_ngram_size (which would
    forbid the second "which is in the image"), a forced end token or a minimum length decodes
    as without them."""
    task, model, batch, records, targets = untrained(demos, "gmner", "tiny-t5")
    before = model.generate(batch, 3, 30)
    assert any(len(set(zip(row, row[1:]))) < len(row) - 1 for row in before.tolist())  # repeated pairs
    own = model.backbone.generation_config
    own.no_repeat_ngram_size, own.forced_eos_token_id, own.min_length, own.length_penalty = 2, 5, 25, -5.0
    assert torch.equal(model.generate(batch, 3, 30), before)
    assert model.backbone.generation_config is own and own.no_repeat_ngram_size == 2  # given back


def test_an_entity_list_never_names_a_span_twice():
    """Numbered mentions only move forward: after "Pak", "Pak (1)" (the same word) is refused and
    "Pak (2)" (the second one) allowed; plain "Pak" again names the second one."""
    task = get_task("mner")
    record = Record("1", "mner", "Pak and Pak".split(), "x")
    first = "Pak is a location [SEP] "
    assert not accepts(task, record, first + "Pak (1) is a location")
    assert accepts(task, record, first + "Pak (2) is a location")
    assert accepts(task, record, first + "Pak is a person")
    assert not accepts(task, record, first + "Pak is a person [SEP] Pak is a person")


def test_a_triple_list_never_writes_a_triple_twice():
    """A written triple is refused again, however its mentions are written ("Obama" or "Obama (1)");
    the same pair under another relation, or with the tail named as another entity, is not."""
    task = get_task("jmere")
    record = Record("1", "jmere", "Obama joins Acme in Pak with Obama".split(), "x")
    first = "Obama is a person, member of, Acme is an organization [SEP] "
    assert not accepts(task, record, first + "Obama is a person, member of, Acme is an organization")
    assert not accepts(task, record, first + "Obama (1) is a person, member of, Acme is an organization")
    assert accepts(task, record, first + "Obama (2) is a person, member of, Acme is an organization")
    assert accepts(task, record, first + "Obama is a person, locate at, Acme is an organization")
    assert accepts(task, record, first + "Obama is a person, member of, Acme is a location")
