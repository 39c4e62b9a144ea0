"""The index target format: the grammar, its parser, pointer decoding with random untrained
models (never an out-of-range or ill-formed sequence), the grounding alignment, the KV cache,
and saving the pointer head. Round trips on every demo and real release: tests/roundtrip.py."""

from __future__ import annotations

import random

import pytest
import torch
from demo_sets import small_demos, untrained_index_dataset, untrained_index_model

from genie.data import Collator
from genie.errors import GenieError
from genie.grammar.index import REGION
from genie.grammar.tensor import tensor_grammar
from genie.model.modeling import GenieModel
from genie.model.targets import make_targets
from genie.model.tokenizer import train_t5_tokenizer
from genie.records import Entity, Record, Relation
from genie.tasks import TASKS, get_task

GMNER, JMERE, FMNERG = get_task("gmner"), get_task("jmere"), get_task("fmnerg")
INDEX_TASKS = sorted(name for name, task in TASKS.items() if task.index_format)


def special(task, name: str) -> int:
    return task.index_format.grammar.index[name]


def word(task, w: int) -> int:
    return task.index_format.grammar.pointer(w)


def test_gmner_target_is_pointers_marker_type_per_entity():
    record = Record("1", "gmner", "Barack Obama visits Pak".split(), "x",
                    [Entity(3, 4, "Pak", "LOC"), Entity(0, 2, "Barack Obama", "PER", [[0, 0, 5, 5]])])
    target = GMNER.index_format.linearize(record)
    assert target.indices == [word(GMNER, 0), word(GMNER, 1), special(GMNER, REGION), special(GMNER, "type:PER"),
                              word(GMNER, 3), special(GMNER, "<no region>"), special(GMNER, "type:LOC"),
                              special(GMNER, "</s>")]
    assert target.slots == [(2, 3)] and target.slot_entities == [1]  # the marker of the second entity
    assert GMNER.index_format.linearize(record, groundable=[False, False]).slots == []


def test_jmere_target_is_head_type_tail_type_relation():
    record = Record("1", "jmere", "Obama met Merkel".split(), "x",
                    [Entity(0, 1, "Obama", "per"), Entity(2, 3, "Merkel", "per")],
                    [Relation(0, 1, "peer"), Relation(1, 0, "None")])
    assert JMERE.index_format.linearize(record).indices == [
        word(JMERE, 0), special(JMERE, "type:per"), word(JMERE, 2), special(JMERE, "type:per"),
        special(JMERE, "relation:peer"), special(JMERE, "</s>")]


def test_parser_counts_malformed_parts_and_keeps_whole_units():
    record = Record("1", "gmner", "Barack Obama visits Pak".split(), "x")
    w, s = (lambda i: word(GMNER, i)), (lambda n: special(GMNER, n))
    indices = [s("type:PER"),  # a type with no span
               w(0), w(2),  # a gap in a span: the unit is dropped, reading restarts at word 2
               w(3), s(REGION), s("type:LOC"),
               w(1), s("<no region>")]  # a unit cut off at the end
    parsed = GMNER.index_format.parse(indices, record)
    assert [(e.span, e.type) for e in parsed.entities] == [((2, 4), "LOC")]
    assert parsed.slots == [(4, 5)] and parsed.slot_entities == [0]
    assert parsed.malformed == 3


def test_parser_drops_pointers_past_the_tweet():
    record = Record("1", "gmner", "Pak".split(), "x")
    parsed = GMNER.index_format.parse([word(GMNER, 5), special(GMNER, "<no region>"), special(GMNER, "type:LOC")],
                                      record)
    assert parsed.entities == [] and parsed.unmatched == 1


def allowed(grammar, prefix: list[int], n_words: int, budget: int) -> tuple[set[int], list[int]]:
    """The labels and the words decoding may pick after `prefix` (a batch two words wider than
    the tweet)."""
    tensors = tensor_grammar(grammar, torch.device("cpu"))
    states = tensors.start(1, len(prefix) + budget)
    for index in prefix:
        states = tensors.advance(states, torch.tensor([index]))
    mask = tensors.allowed(states, torch.tensor([n_words]), budget, n_words + 2)[0]
    n_special = len(grammar.specials)
    return set(mask[:n_special].nonzero()[:, 0].tolist()), mask[n_special:].nonzero()[:, 0].tolist()


def test_grammar_constrains_spans_fine_types_and_the_length_budget():
    grammar = FMNERG.index_format.grammar
    span = [grammar.pointer(4)]
    labels, words = allowed(grammar, span, n_words=6, budget=10)
    assert words == [5] and labels == {grammar.index[REGION], grammar.index["<no region>"]}
    assert allowed(grammar, span, n_words=5, budget=10)[1] == []  # no word 5 in a 5-word tweet
    # A pointer needs marker, coarse, fine and the end label after it: 5 indices in all.
    assert allowed(grammar, [], n_words=6, budget=5)[1] == list(range(6))
    assert allowed(grammar, [], n_words=6, budget=4) == ({grammar.end}, [])
    fine = {grammar.specials[i] for i in allowed(grammar, span + [grammar.index[REGION], grammar.index["type:person"]],
                                                 6, 10)[0]}
    assert fine == {f"fine:{f}" for f in ("politician", "musician", "actor", "artist", "athlete", "author",
                                          "businessman", "character", "coach", "director", "intellectual",
                                          "journalist", "person_other")}


def test_grammar_forbids_an_entity_in_relation_with_itself():
    grammar = JMERE.index_format.grammar
    labels, _ = allowed(grammar, [grammar.pointer(0), grammar.index["type:per"], grammar.pointer(0)], 3, 10)
    assert {grammar.specials[i] for i in labels} == {"type:org", "type:loc", "type:misc"}


def test_unknown_or_unavailable_format_is_a_clear_error():
    with pytest.raises(GenieError, match="no index target format"):
        make_targets("index", get_task("mre"), None, 8, 8)
    with pytest.raises(GenieError, match="target_format must be one of text, index"):
        make_targets("pointer", GMNER, None, 8, 8)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return small_demos(tmp_path_factory.mktemp("demos"), INDEX_TASKS, n_train=60, n_dev=20, n_test=20,
                       feature_dim=16)


@pytest.mark.parametrize("backbone", ["tiny-t5", "tiny-bart"])
def test_index_predictions_do_not_depend_on_the_batch(demos, backbone):
    """In float64 (no rounding ties), each record's indices are the same whether its batch pads
    the text to its own length or to a longer neighbour's (BART: absolute positions)."""
    task, model, dataset = untrained_index_dataset(demos, "gmner", backbone, 0)
    model = model.double()
    collate = Collator(dataset.targets.tokenizer.pad_token_id)
    grammar = task.index_format.grammar

    def decoded(size: int) -> list[list[int]]:
        out = []
        for start in range(0, len(dataset), size):
            batch = collate([dataset[i] for i in range(start, min(start + size, len(dataset)))])
            out += model.generate_indices(batch, grammar, 2, 30)
        return out

    alone = decoded(1)
    assert len({len(s) for s in alone}) > 1  # the sequences are not all alike
    for size in (7, len(dataset)):
        assert decoded(size) == alone


@pytest.mark.parametrize("name", INDEX_TASKS)
@pytest.mark.parametrize("backbone", ["tiny-t5", "tiny-bart"])
def test_pointer_decoding_of_random_models_is_always_well_formed(demos, name, backbone):
    for seed in range(2):
        task, model, batch, records = untrained_index_model(demos, name, backbone, seed)
        grammar = task.index_format.grammar
        n_words = batch["word_mask"].sum(1).tolist()
        for beams, budget in ((1, 64), (3, 64), (1, 9), (4, 9)):
            for sequence, record, words in zip(model.generate_indices(batch, grammar, beams, budget), records, n_words):
                assert sequence[-1] == grammar.end and len(sequence) <= budget
                assert all(i < len(grammar.specials) + words for i in sequence)  # never past the tweet
                parsed = task.index_format.parse(sequence, record)
                assert parsed.malformed == parsed.unmatched == 0, sequence


def test_beam_search_scores_at_least_as_high_as_greedy(demos):
    """Under the model, beam search's choice is never less likely than greedy's (length-normalised)."""
    task, model, batch, _ = untrained_index_model(demos, "gmner", "tiny-t5", 0)
    grammar = task.index_format.grammar
    greedy = model.generate_indices(batch, grammar, 1, 30)
    beam = model.generate_indices(batch, grammar, 4, 30)
    assert _mean_logprob(model, batch, beam) >= _mean_logprob(model, batch, greedy) - 1e-4
    assert beam != greedy  # an untrained model: the searches disagree somewhere


def teacher_forced(model, batch, sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """The sequences as padded labels, and the model's logits for them read without a KV cache."""
    width = max(len(s) for s in sequences)
    labels = torch.full((len(sequences), width), -100)
    for i, s in enumerate(sequences):
        labels[i, :len(s)] = torch.tensor(s)
    with torch.no_grad():
        encoder_states, mask, _, _ = model.encode(batch)
        states, _ = model.teacher_forced({**batch, "labels": labels}, encoder_states, mask)
        return labels, model.pointer.logits(states, model.words(batch, encoder_states), batch["word_mask"])


def _mean_logprob(model, batch, sequences) -> torch.Tensor:
    """Per sequence, the mean log-probability of its indices; averaged over the batch."""
    labels, logits = teacher_forced(model, batch, sequences)
    picked = logits.log_softmax(-1).gather(2, labels.clamp(min=0)[..., None])[..., 0].masked_fill(labels < 0, 0)
    return (picked.sum(1) / (labels >= 0).sum(1)).mean()


def test_cached_greedy_decoding_matches_teacher_forced_argmax(demos):
    """The KV-cached search, re-read without a cache, picks the allowed argmax at every step."""
    task, model, batch, _ = untrained_index_model(demos, "fmnerg", "tiny-t5", 1)
    grammar = task.index_format.grammar
    sequences = model.generate_indices(batch, grammar, 1, 40)
    _, logits = teacher_forced(model, batch, sequences)
    for i, sequence in enumerate(sequences):
        words = int(batch["word_mask"][i].sum())
        for t, index in enumerate(sequence):
            labels_ok, words_ok = allowed(grammar, sequence[:t], words, 40 - t)
            options = sorted(labels_ok) + [grammar.pointer(w) for w in words_ok]
            assert index == max(options, key=lambda o: logits[i, t, o].item())


def test_grounding_pools_the_state_deciding_the_marker_and_the_one_fed_it(demos):
    task, model, batch, records = untrained_index_model(demos, "gmner", "tiny-t5", 0)
    region = task.index_format.grammar.index[REGION]
    slots = 0
    for s, example in enumerate(batch["slot_example"].tolist()):
        deciding, fed = batch["slot_pool"][s].nonzero().flatten().tolist()
        assert batch["slot_pool"][s, deciding] == batch["slot_pool"][s, fed] == 0.5
        assert batch["labels"][example, deciding] == region  # predicting the marker...
        assert fed == deciding + 1 and batch["labels"][example, fed].item() in {
            task.index_format.grammar.index[f"type:{t}"] for t in task.labels}  # ...then fed it, predicting the type
        slots += 1
    assert slots == sum(e.groundable for r in records for e in r.entities) > 0


def test_words_past_the_source_length_cannot_be_targets():
    tokens = [f"w{i}" for i in range(40)]
    record = Record("long", "gmner", tokens, "x", [Entity(39, 40, "w39", "PER")])
    tokenizer = train_t5_tokenizer([" ".join(tokens)] * 3, 60)
    targets = make_targets("index", GMNER, tokenizer, 16, 64)
    _, starts = targets.source(record)
    assert 0 < len(starts) < 16
    with pytest.raises(GenieError, match="raise model.max_source_length"):
        targets.encode(record, [False])


def test_pointer_head_is_saved_and_reloaded(demos, tmp_path):
    task, model, batch, _ = untrained_index_model(demos, "jmere", "tiny-t5", 2)
    with torch.no_grad():  # as training would: nothing may be re-derived from the weights on load
        model.backbone.get_input_embeddings().weight.mul_(3.0)
    model.save_pretrained(tmp_path / "m")
    loaded = GenieModel.from_pretrained(tmp_path / "m").eval()
    assert loaded.pointer.num_labels == len(task.index_format.grammar.specials)
    grammar = task.index_format.grammar
    assert loaded.generate_indices(batch, grammar, 2, 30) == model.generate_indices(batch, grammar, 2, 30)


def test_random_index_sequences_never_crash_the_parser():
    rng = random.Random(0)
    record = Record("1", "jmere", "a b c d".split(), "x")
    grammar = JMERE.index_format.grammar
    for _ in range(300):
        sequence = [rng.randrange(len(grammar.specials) + 6) for _ in range(rng.randrange(12))]
        parsed = JMERE.index_format.parse(sequence, record)
        for relation in parsed.relations:
            head, tail = parsed.entities[relation.head], parsed.entities[relation.tail]
            assert head.end <= 4 and tail.end <= 4 and (head.span, head.type) != (tail.span, tail.type)


def test_an_entity_list_is_a_set_in_text_order():
    """Decoding cannot write a span twice: a unit starts after the previous unit's first word.
    The parser still reads units out of order (not malformed) and drops exact repeats, counted."""
    grammar = GMNER.index_format.grammar
    unit = [word(GMNER, 1), word(GMNER, 2), special(GMNER, "<no region>"), special(GMNER, "type:LOC")]
    assert allowed(grammar, unit, n_words=5, budget=20)[1] == [2, 3, 4]
    assert allowed(grammar, [], n_words=5, budget=20)[1] == [0, 1, 2, 3, 4]
    record = Record("1", "gmner", "Barack Obama visits Pak".split(), "x")
    parsed = make_targets("index", GMNER, None, 8, 8).parse(unit + [word(GMNER, 0), special(GMNER, REGION),
                                                                   special(GMNER, "type:PER")] + unit, record)
    assert [(e.span, e.type) for e in parsed.entities] == [((1, 3), "LOC"), ((0, 1), "PER")]
    assert parsed.repeated == 1 and parsed.malformed == 0 and parsed.slot_entities == [1]
    with pytest.raises(GenieError, match="record '2'.*two entities start at word 0"):
        GMNER.index_format.linearize(Record("2", "gmner", "Barack Obama".split(), "x",
                                            [Entity(0, 1, "Barack", "PER"), Entity(0, 2, "Barack Obama", "PER")]))


def test_repeated_triples_are_dropped_and_counted():
    record = Record("1", "jmere", "Obama visits Pak".split(), "x")
    triple = [word(JMERE, 0), special(JMERE, "type:per"), word(JMERE, 2), special(JMERE, "type:loc"),
              special(JMERE, "relation:place_of_residence")]
    parsed = make_targets("index", JMERE, None, 8, 8).parse(triple * 3 + [special(JMERE, "</s>")], record)
    assert len(parsed.relations) == 1 and parsed.repeated == 2 and len(parsed.entities) == 2
