"""Auxiliary context (`genie/context.py`): the record field through every reader and writer, the
merge command, the source the model reads (the context cut first, never the tweet; pointers and
mentions only in the tweet), and the context demo, whose gain disappears when context is withheld."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cli_output import run_cli
from demo_sets import task_config

from genie.analysis.report import write_report
from genie.config import load_config
from genie.context import MARKER, ContextUse, context_suffix
from genie.data import Collator, GenieDataset
from genie.demo import build_demo
from genie.demo.entities import HINTS
from genie.errors import GenieError
from genie.inference.journal import OutputJournal
from genie.inference.posts import post_records, read_posts
from genie.instructions import instruction_line, read_examples
from genie.model.targets import make_targets, source_text
from genie.model.tokenizer import train_bart_tokenizer, train_t5_tokenizer
from genie.prompts import load_prompts
from genie.records import BadLines, Context, Entity, Record, read_records, write_records
from genie.regions.source import FeatureSource
from genie.regions.store import build_store
from genie.tasks import get_task
from genie.training.batching import SortedBatches
from genie.training.run import train

MNER, GMNER = get_task("mner"), get_task("gmner")
KRAIDO = Record("p1", "mner", ["Kraido", "rocks", "tonight", "#live"], "img1", [Entity(0, 1, "Kraido", "PER")],
                context=[Context("llm", "Kraido is a singer , like Brelo"), Context("caption", "a man on a stage")])
TEXTS = ["Kraido rocks tonight #live | llm: Kraido is a singer , like Brelo | caption: a man on a stage",
         "Kraido is a person", "Brelo is a person", "a photo of a sign"] * 20
TOKENIZERS = {"t5": lambda: train_t5_tokenizer(TEXTS, 100), "bart": lambda: train_bart_tokenizer(TEXTS, 300)}


def test_records_keep_their_context_through_files(tmp_path):
    write_records(tmp_path / "r.jsonl", [KRAIDO, replace(KRAIDO, id="p2", context=[])])
    back = read_records(tmp_path / "r.jsonl")
    assert back[0] == KRAIDO and back[1].context == []
    assert "context" not in json.loads((tmp_path / "r.jsonl").read_text().splitlines()[1])  # written only when set
    line = instruction_line(KRAIDO, load_prompts(MNER), "train", "text")
    assert line["input"] == f"Kraido rocks tonight #live {MARKER} llm: Kraido is a singer , like Brelo " \
                            f"{MARKER} caption: a man on a stage"
    (tmp_path / "i.jsonl").write_text(json.dumps(line) + "\n")
    records, instructions = read_examples(tmp_path / "i.jsonl")
    assert records == [KRAIDO] and instructions == [line["instruction"]]


@pytest.mark.parametrize("context, problem", [
    ({"source": "llm"}, "context 0 must be an object with exactly 'source' and 'text'"),
    ({"source": "my llm", "text": "x"}, "context 0 source must be a name without spaces"),
    ({"source": "llm", "text": " "}, "context 0 text must be a non-empty string"),
])
def test_a_bad_context_is_one_line_naming_file_and_line(tmp_path, context, problem):
    row = {**KRAIDO.to_dict(), "context": [context]}
    (tmp_path / "r.jsonl").write_text(json.dumps(KRAIDO.to_dict()) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(GenieError, match=rf"r\.jsonl:2: not a genie record: {problem}"):
        read_records(tmp_path / "r.jsonl")


def test_posts_carry_context_to_their_records(tmp_path):
    (tmp_path / "posts.jsonl").write_text(json.dumps(
        {"id": "a", "text": "Kraido rocks", "context": [{"source": "llm", "text": "Kraido is a singer"}]}) + "\n"
        + "a plain post\n" + json.dumps({"text": "x", "context": "no list"}) + "\n")
    with pytest.raises(GenieError, match=r"posts\.jsonl:3: not a post: 'context' must be a list"):
        read_posts(tmp_path / "posts.jsonl")
    posts, _ = read_posts(tmp_path / "posts.jsonl", bad_lines=BadLines())
    records = post_records(posts, "mner", None).records
    assert records[0].context == [Context("llm", "Kraido is a singer")] and records[1].context == []


MNER_RELEASE = "IMGID:1\nKraido\tB-PER\nrocks\tO\n\nIMGID:2\nBrelo\tB-LOC\nrules\tO\n\nIMGID:3\nhi\tO\n"


def test_convert_merges_context_by_id_and_counts_what_did_not_fit(tmp_path, capsys):
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "valid.txt").write_text(MNER_RELEASE)
    lines = [{"id": "dev-1", "source": "llm", "text": "Kraido is a singer"},
             {"id": "dev-1", "source": "caption", "text": "a man on a stage"},
             {"id": "dev-1", "source": "llm", "text": "Kraido is a singer"},  # a duplicate
             {"id": 2, "source": "llm", "text": "an unknown id"},
             {"id": "dev-2", "source": "llm", "text": "Brelo is a town"}]
    (tmp_path / "context.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = ["convert", "--task", "mner", "--source", tmp_path / "release", "--split", "dev", "--context",
            tmp_path / "context.jsonl"]
    code, summary = run_cli(capsys, *args, "--out", tmp_path / "dev.jsonl")
    assert code == 0, summary
    assert (summary["records"], summary["context_lines"], summary["records_with_context"],
            summary["unmatched_context_lines"], summary["duplicate_context_lines"], summary["first_unmatched_id"]) == \
        (3, 5, 2, 1, 1, "2")
    records = read_records(tmp_path / "dev.jsonl")
    assert [[(c.source, c.text) for c in r.context] for r in records] == [
        [("llm", "Kraido is a singer"), ("caption", "a man on a stage")], [("llm", "Brelo is a town")], []]
    code, summary = run_cli(capsys, *args, "--out", tmp_path / "dev.inst.jsonl", "--format", "instruction")
    first = json.loads((tmp_path / "dev.inst.jsonl").read_text().splitlines()[0])
    assert first["input"] == "Kraido rocks | llm: Kraido is a singer | caption: a man on a stage"
    (tmp_path / "context.jsonl").write_text(json.dumps(lines[0]) + "\n" + '{"id": "dev-1", "source": "llm"}\n')
    code, error = run_cli(capsys, *args, "--out", tmp_path / "other.jsonl")
    assert code == 2 and "context.jsonl:2: not a context line" in error
    assert not (tmp_path / "other.jsonl").exists()


def test_data_context_picks_sources(tmp_path):
    def picked(*overrides):
        return [c.source for c in ContextUse.from_config(load_config(None, list(overrides)).data).pick(KRAIDO)]

    assert picked() == ["llm", "caption"]  # the default: all
    assert picked("data.context=caption") == ["caption"]
    assert picked("data.context=none") == picked("data.max_context_tokens=0") == []
    with pytest.raises(GenieError, match="data.context must be all, none or a comma-separated list"):
        load_config(None, ["data.context=llm, my caption"])


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_the_context_is_cut_first_and_never_the_tweet(kind):
    tokenizer = TOKENIZERS[kind]()
    plain = make_targets("text", MNER, tokenizer, 64, 32)
    tweet_only = plain.encode_source(KRAIDO)[0]
    closing = tweet_only[-1:]  # </s> for both
    context_ids = tokenizer(context_suffix(KRAIDO.context), add_special_tokens=False)["input_ids"]
    assert 3 < len(context_ids) < 64
    for max_tokens in (0, 3, 64):
        targets = make_targets("text", MNER, tokenizer, 64, 32, ContextUse(None, max_tokens))
        ids, _, cut = targets.encode_source(KRAIDO)
        assert ids[:len(tweet_only) - 1] == tweet_only[:-1] and ids[-1:] == closing
        assert ids[len(tweet_only) - 1:-1] == context_ids[:max_tokens]
        assert cut == (0 < max_tokens < 64) and targets.source_lengths([KRAIDO]) == [len(ids)]
    whole = make_targets("text", MNER, tokenizer, 64, 32, ContextUse(None, 64)).encode_source(KRAIDO)[0]
    assert MARKER in tokenizer.decode(whole) and "Brelo" in tokenizer.decode(whole)
    # Room for the tweet and 4 context tokens: the context loses the rest.
    tight = make_targets("text", MNER, tokenizer, len(tweet_only) + 4, 32, ContextUse(None, 64))
    ids, _, cut = tight.encode_source(KRAIDO)
    assert len(ids) == len(tweet_only) + 4 and ids[:len(tweet_only) - 1] == tweet_only[:-1] and cut
    # A tweet longer than the source: cut as without context, and no context at all.
    limit = len(tweet_only) - 2
    short = make_targets("text", MNER, tokenizer, limit, 32, ContextUse(None, 64)).encode_source(KRAIDO)
    assert short[0] == make_targets("text", MNER, tokenizer, limit, 32).encode_source(KRAIDO)[0] and short[2]


@pytest.mark.parametrize("kind", TOKENIZERS)
def test_pointers_never_point_into_the_context(kind):
    """The context repeats the tweet's words ("Kraido"): the word starts are still the tweet's."""
    tokenizer = TOKENIZERS[kind]()
    plain = make_targets("index", MNER, tokenizer, 64, 32)
    with_context = make_targets("index", MNER, tokenizer, 64, 32, ContextUse(None, 64))
    ids, starts = with_context.source(KRAIDO, "find the entities:")
    plain_ids, plain_starts = plain.source(KRAIDO, "find the entities:")
    assert starts == plain_starts and len(starts) == len(KRAIDO.tokens)
    assert ids[:len(plain_ids) - 1] == plain_ids[:-1] and len(ids) > len(plain_ids)
    assert max(starts) < len(plain_ids) - 1  # every start is before the first context token
    encoded, plain_encoded = with_context.encode(KRAIDO, [False]), plain.encode(KRAIDO, [False])
    assert encoded["word_starts"] == plain_encoded["word_starts"] and encoded["labels"] == plain_encoded["labels"]


def test_mentions_are_read_only_in_the_tweet():
    """"Brelo" is only in the context: the parser finds no such mention, and constrained decoding
    cannot write it."""
    parsed = MNER.parse("Kraido is a person [SEP] Brelo is a person", KRAIDO)
    assert [(e.start, e.end, e.type) for e in parsed.entities] == [(0, 1, "PER")] and parsed.unmatched == 1
    grammar = MNER.text_grammar(KRAIDO)
    assert not grammar.read(grammar.start(), b"Brelo")
    assert grammar.accepts(grammar.read(grammar.start(), b"Kraido is a person"))


def test_a_tokenizer_that_cannot_write_the_marker_is_refused():
    tokenizer = train_t5_tokenizer([t.replace(MARKER, "") for t in TEXTS], 100)  # never saw the marker
    targets = make_targets("text", MNER, tokenizer, 64, 32, ContextUse(None, 64))
    assert targets.context_report([replace(KRAIDO, context=[])]) == {"with_context": 0, "sources": {}}
    with pytest.raises(GenieError, match="cannot write the context marker"):
        targets.context_report([KRAIDO])
    report = make_targets("text", MNER, TOKENIZERS["t5"](), 64, 32, ContextUse(("llm",), 3)).context_report([KRAIDO])
    assert report == {"with_context": 1, "sources": {"llm": 1}, "cut": 1}


@pytest.mark.parametrize("name", ["mner", "gmner", "fmnerg", "mre", "jmere"])
def test_the_demos_with_a_context_variant_build_it_beside_the_plain_one(name, tmp_path):
    task = get_task(name)
    build_demo(tmp_path / "plain", task.demo, n_train=60, n_dev=0, n_test=0)
    assert not any(r.context for r in read_records(tmp_path / "plain" / "train.jsonl"))
    if name not in ("mner", "gmner"):
        with pytest.raises(GenieError, match=f"the {name} demo has no context variant"):
            task.demo.with_context()
        return
    build_demo(tmp_path / "context", task.demo.with_context(), n_train=60, n_dev=0, n_test=0)
    records = read_records(tmp_path / "context" / "train.jsonl")
    hinted = [r for r in records if any(c.source == "llm" for c in r.context)]
    assert 10 < len(hinted) < 50
    for record in hinted:  # the hint names a name of the tweet, whose type it tells
        for context in (c for c in record.context if c.source == "llm"):
            named, hint = context.text.split(" , like ")[0].split(" is ")
            assert any(e.text == named and hint in HINTS[e.type] for e in record.entities), (record.tokens, context)
    if task.grounded:
        assert any(e.boxes for r in hinted for e in r.entities)


def test_the_report_page_shows_the_context_the_model_read(tmp_path):
    write_report(MNER, [KRAIDO], [replace(KRAIDO, entities=[])], tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<div class='context'>llm: Kraido is a singer , like Brelo</div>" in page
    assert "<div class='context'>caption: a man on a stage</div>" in page


def test_context_records_batch_by_their_whole_length_and_read_regions_from_a_store(tmp_path):
    build_demo(tmp_path / "demo", MNER.demo.with_context(), n_train=40, n_dev=0, n_test=0)
    records = read_records(tmp_path / "demo" / "train.jsonl")
    build_store(tmp_path / "demo" / "features", tmp_path / "store", max_regions=10, dtype="float32")
    use = ContextUse(None, 64)
    tokenizer = train_t5_tokenizer([source_text(MNER, r, "", use) for r in records], 300)
    sources = [(use, tmp_path / "store"), (use, tmp_path / "demo" / "features"), (ContextUse(), tmp_path / "store")]
    sets = [GenieDataset(records, make_targets("text", MNER, tokenizer, 64, 64, context),
                         FeatureSource(str(where), 10, 64)) for context, where in sources]
    lengths, plain = sets[0].lengths(with_targets=False), sets[2].lengths(with_targets=False)
    assert lengths == [len(sets[0][i]["input_ids"]) for i in range(len(records))]
    assert [n > p for n, p in zip(lengths, plain)] == [bool(r.context) for r in records]
    assert any(r.context for r in records) and not all(r.context for r in records)
    first = next(iter(SortedBatches(lengths, 8)))
    batch = Collator(tokenizer.pad_token_id)([sets[0][i] for i in first])
    assert batch["input_ids"].shape[1] == max(lengths) and batch["attention_mask"].sum(1).tolist() == \
        [lengths[i] for i in first]
    for i in range(len(records)):
        assert (sets[0][i]["region_features"] == sets[1][i]["region_features"]).all()


# --- the context demo, end to end ------------------------------------------------------------------

@pytest.fixture(scope="module")
def context_run(tmp_path_factory):
    """MNER's context demo, trained reading the context: (its metrics, its folder, its demo)."""
    out = tmp_path_factory.mktemp("context")
    cfg = task_config("mner", [f"train.output_dir={out / 'run'}", f"data.demo_dir={out / 'demo'}",
                               "data.demo_context=true", "data.demo_train_tweets=4000", "train.epochs=5",
                               "train.eval_every_epochs=5"])
    return train(cfg), out / "run", out / "demo" / "mner-context"


@pytest.mark.slow
@pytest.mark.xdist_group("context_run")
def test_the_context_demo_gains_what_withholding_the_context_loses(context_run, tmp_path, capsys):
    metrics, run, demo = context_run
    gold = read_records(demo / "test.jsonl")
    with_context = sum(bool(r.context) for r in gold)
    assert metrics["parser"]["with_context"] == with_context > 100 and metrics["parser"]["unmatched"] == 0
    assert metrics["mner"]["f1"] >= 80, metrics["mner"]

    def decoded(name, *overrides):
        code, summary = run_cli(capsys, "decode", "--checkpoint", run / "best", "--input", demo / "test.jsonl",
                                "--output", tmp_path / name, *overrides)
        assert code == 0, summary
        code, scores = run_cli(capsys, "evaluate", "--task", "mner", "--gold", demo / "test.jsonl",
                               "--pred", tmp_path / name)
        return summary, scores["mner"]["f1"]

    summary, f1 = decoded("read.jsonl")
    assert f1 == metrics["mner"]["f1"] and summary["with_context"] == with_context
    assert read_records(tmp_path / "read.jsonl")[0].context == gold[0].context  # predictions keep the input's
    for withheld in ("data.context=none", "data.context=caption"):  # the type hints are the llm's
        summary, f1 = decoded("withheld.jsonl", withheld)
        assert f1 <= metrics["mner"]["f1"] - 10 and summary.get("with_context", 0) < with_context


@pytest.mark.slow
@pytest.mark.xdist_group("context_run")
def test_a_killed_decode_of_context_records_resumes_and_posts_carry_context(context_run, tmp_path, capsys,
                                                                             monkeypatch):
    _, run, demo = context_run
    args = ["decode", "--checkpoint", run / "best", "--input", demo / "test.jsonl", "decode.batch_size=32",
            "decode.chunk_size=64"]
    code, whole = run_cli(capsys, *args, "--output", tmp_path / "whole.jsonl")
    real_add = OutputJournal.add

    def add_then_die(self, *chunk):
        real_add(self, *chunk)
        raise KeyboardInterrupt

    monkeypatch.setattr(OutputJournal, "add", add_then_die)
    assert run_cli(capsys, *args, "--output", tmp_path / "preds.jsonl")[0] == 130
    monkeypatch.setattr(OutputJournal, "add", real_add)
    code, resumed = run_cli(capsys, *args, "--output", tmp_path / "preds.jsonl")
    assert code == 0 and resumed["resumed_with"] == 64 and resumed["with_context"] == whole["with_context"]
    assert (tmp_path / "preds.jsonl").read_text() == (tmp_path / "whole.jsonl").read_text()

    gold = read_records(demo / "test.jsonl")[:40]
    posts = [{"id": r.id, "text": " ".join(r.tokens), "image": r.image_id,
              "context": [{"source": c.source, "text": c.text} for c in r.context]} for r in gold]
    (tmp_path / "posts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in posts))
    code, summary = run_cli(capsys, "predict", "--checkpoint", run / "best", "--input", tmp_path / "posts.jsonl",
                            "--output", tmp_path / "posted.jsonl", "--features", demo / "features")
    assert code == 0 and summary["with_context"] == sum(bool(r.context) for r in gold) > 0, summary
    predicted = [json.loads(line) for line in (tmp_path / "posted.jsonl").read_text().splitlines()]
    decoded = {r.id: r for r in read_records(tmp_path / "whole.jsonl")}
    assert [[(e["start"], e["end"], e["type"]) for e in p["entities"]] for p in predicted] == \
        [[(e.start, e.end, e.type) for e in decoded[r.id].entities] for r in gold]
    assert [p.get("context", []) for p in predicted] == [p["context"] for p in posts]
