"""Fuzzing every place a user's file or option enters genie: each data builder, the record and
instruction JSONL readers, the feature reader and store, the config loader and the CLI.

A valid input is cut short, given stray or mis-encoded bytes, lines dropped or doubled, or a value
swapped for one of the wrong type or range. The reader must then either accept it or raise a
GenieError: one line naming the file (and, for line-based files, the line). Any other exception
is a failure, with hypothesis's smallest example. Runs are derandomized: the same inputs on
every run."""

from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_builder_gmner import TRAIN_TXT, voc
from test_fmnerg import CONLL as FMNERG_CONLL
from test_fmnerg import XML as FMNERG_XML
from test_jmere import ITEM as JMERE_ITEM
from test_mre import LINES as MNRE_LINES

from genie.cli import main
from genie.config import load_config
from genie.context import read_context_lines
from genie.errors import GenieError
from genie.inference.posts import read_posts
from genie.instructions import read_examples
from genie.records import BadLines, Context, Entity, Record, Relation, read_records
from genie.regions.source import FeatureSource
from genie.regions.store import FeatureStore, build_store
from genie.tasks import get_task

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None)
SWAPS = ["-1", "0", "1e309", "NaN", "-Infinity", "null", "true", "[]", "{}", '""', '"x"', "99999999999999999999",
         "3.5", "[1, 2]", '{"a": 1}', "\u00e9", "\\u0000"]


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """`original` with one fault of the kinds a real file has."""
    kind = draw(st.sampled_from(["truncate", "bytes", "encoding", "drop_line", "double_line", "swap"]))
    if kind == "truncate":
        return original[:draw(st.integers(0, max(len(original) - 1, 0)))]
    at = draw(st.integers(0, len(original)))
    if kind == "bytes":
        end = draw(st.integers(at, min(at + 8, len(original))))
        return original[:at] + draw(st.binary(max_size=8)) + original[end:]
    if kind == "encoding":
        stray = draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3", b"\x00", "é".encode("utf-16")]))
        return original[:at] + stray + original[at:]
    lines = original.split(b"\n")
    k = draw(st.integers(0, len(lines) - 1))
    if kind == "drop_line":
        return b"\n".join(lines[:k] + lines[k + 1:])
    if kind == "double_line":
        return b"\n".join(lines[:k + 1] + lines[k:])
    tokens = re.split(rb"([\s,:\[\]{}\t]+)", original)
    words = [i for i, t in enumerate(tokens) if t and not re.fullmatch(rb"[\s,:\[\]{}\t]+", t)]
    if not words:
        return original
    i = draw(st.sampled_from(words))
    tokens[i] = draw(st.sampled_from(SWAPS)).encode()
    return b"".join(tokens)


def assert_clean(call, path: Path, lines: bool = False):
    """`call()` succeeds, or fails with one line naming `path` (and its line, for line files)."""
    try:
        return call()
    except GenieError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert exc.path is not None and Path(exc.path).name in {path.name, path.parent.name}, message
        if lines and exc.problem not in ("no such file",):
            assert exc.line is not None, message
        return None


def rewrite(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# --- record and instruction JSONL -----------------------------------------------------------------

RECORDS = [
    Record("1", "gmner", ["Messi", "in", "Paris"], "img1", [Entity(0, 1, "Messi", "PER", [[1, 2, 30, 40]]),
                                                            Entity(2, 3, "Paris", "LOC")]),
    Record("2", "jmere", ["Obama", "joins", "Acme"], "img2",
           [Entity(0, 1, "Obama", "per"), Entity(2, 3, "Acme", "org")], [Relation(0, 1, "member_of")]),
    # A prediction: said to be in the image with no region left to choose, and unreadable parts.
    Record("3", "gmner", ["Pak", "!"], "img3", [Entity(0, 1, "Pak", "LOC", in_image=True)], unreadable=2),
    # Auxiliary context after the tweet (genie/context.py).
    Record("4", "mner", ["Kraido", "rocks"], "img4", [Entity(0, 1, "Kraido", "PER")],
           context=[Context("llm", "Kraido is a singer"), Context("caption", "a man on a stage")]),
]


def record_bytes() -> bytes:
    return b"".join(json.dumps(r.to_dict()).encode() + b"\n" for r in RECORDS)


def instruction_bytes() -> bytes:
    lines = [{"task": r.task, "instruction": "find the entities", "input": " ".join(r.tokens), "image_id": r.image_id,
              "output": "x", "record": r.to_dict()} for r in RECORDS]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


@FUZZ
@given(st.data())
def test_record_and_instruction_readers(data):
    with tempfile.TemporaryDirectory() as tmp:
        for original, read in ((record_bytes(), read_records), (instruction_bytes(), read_examples)):
            path = rewrite(Path(tmp) / "data.jsonl", data.draw(mutated(original)))
            assert_clean(lambda: read(path), path, lines=True)
            skipped = BadLines()
            rows = read(path, skipped)  # skipping: never an error for a line's content
            assert len(rows[0] if isinstance(rows, tuple) else rows) + skipped.count <= len(original.split(b"\n"))


CONTEXT_LINES = (b'{"id": "1", "source": "llm", "text": "Messi is a football player"}\n'
                 b'{"id": 2, "source": "caption", "text": "a man shaking hands"}\n')
POSTS = (b'{"id": "a", "text": "Kraido rocks", "image": "a.jpg", "context": [{"source": "llm", "text": "a singer"}]}\n'
         b"Messi in Paris\n")


@FUZZ
@given(st.data())
def test_context_and_post_readers(data):
    with tempfile.TemporaryDirectory() as tmp:
        for original, read in ((CONTEXT_LINES, read_context_lines), (POSTS, read_posts)):
            path = rewrite(Path(tmp) / "data.jsonl", data.draw(mutated(original)))
            assert_clean(lambda: read(path), path, lines=read is read_context_lines)


# --- data builders ----------------------------------------------------------------------------------

def gmner_release(root: Path) -> Path:
    (root / "txt").mkdir()
    (root / "xml").mkdir()
    (root / "txt" / "train.txt").write_text(TRAIN_TXT)
    (root / "xml" / "1.xml").write_text(voc(("Messi", (10, 20, 110, 220)), ("Camp Nou", (0, 0, 500, 200))))
    return root / ("txt/train.txt" if root.name == "conll" else "xml/1.xml")


def mner_release(root: Path) -> Path:
    (root / "valid.txt").write_text("IMGID:1\nRT\tO\nObama\tB-PER\nin\tO\nNew\tB-LOC\nYork\tI-LOC\n\n"
                                    "IMGID:2\nNY\tI-LOC\n")
    return root / "valid.txt"


def mre_release(root: Path) -> Path:
    (root / "mnre_txt").mkdir()
    (root / "mnre_txt" / "mnre_val.txt").write_text("\n".join(MNRE_LINES) + "\n")
    return root / "mnre_txt" / "mnre_val.txt"


def jmere_release(root: Path) -> Path:
    (root / "val.json").write_text(json.dumps([JMERE_ITEM]))
    return root / "val.json"


def fmnerg_release(root: Path) -> Path:
    (root / "txt_fine").mkdir()
    (root / "xml").mkdir()
    (root / "txt_fine" / "dev.txt").write_text(FMNERG_CONLL)
    (root / "xml" / "1768609.xml").write_text(FMNERG_XML)
    return root / ("txt_fine/dev.txt" if root.name == "conll" else "xml/1768609.xml")


# (task, split, release maker, whether the mutated file is line-based); "conll"/"xml" picks the file.
BUILDER_CASES = [
    ("gmner", "train", gmner_release, "conll"), ("gmner", "train", gmner_release, "xml"),
    ("mner", "dev", mner_release, "conll"), ("mre", "dev", mre_release, "conll"),
    ("jmere", "dev", jmere_release, "json"),
    ("fmnerg", "dev", fmnerg_release, "conll"), ("fmnerg", "dev", fmnerg_release, "xml"),
]


@pytest.mark.parametrize("task, split, make, which", BUILDER_CASES, ids=[f"{c[0]}-{c[3]}" for c in BUILDER_CASES])
@FUZZ
@given(data=st.data())
def test_builders(task, split, make, which, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / which
        root.mkdir()
        path = make(root)
        rewrite(path, data.draw(mutated(path.read_bytes())))
        result = assert_clean(lambda: get_task(task).builder(root, split), path, lines=which == "conll")
        if result is not None:
            for record in result.records:  # whatever it accepted is a valid record
                assert Record.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_convert_leaves_no_output_when_the_release_is_bad(tmp_path):
    gmner_release(tmp_path)
    (tmp_path / "xml" / "1.xml").write_text("<annotation><object>")
    out = tmp_path / "train.jsonl"
    out.write_text("the old file\n")
    stderr = io.StringIO()
    with redirect_stderr(stderr):
        assert main(["convert", "--task", "gmner", "--source", str(tmp_path), "--split", "train", "--out",
                     str(out)]) == 2
    assert out.read_text() == "the old file\n" and [p.name for p in tmp_path.iterdir() if p.is_file()] == [out.name]
    assert stderr.getvalue().count("\n") == 1 and "1.xml" in stderr.getvalue()


# --- region features: .npz files and the store -------------------------------------------------------

def npz_bytes() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, box_features=rng.random((4, 8), np.float32),
             bounding_boxes=np.array([[0, 0, 10, 10]] * 4, np.float32), image_h=np.int64(20), image_w=np.int64(30),
             num_boxes=np.int64(4))
    return buffer.getvalue()


@FUZZ
@given(st.data())
def test_feature_files(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = rewrite(Path(tmp) / "img.jpg.npz", data.draw(mutated(npz_bytes())))
        source = FeatureSource(tmp, max_regions=3, feature_dim=8)
        regions = assert_clean(lambda: source.get("img"), path)
        if regions is not None:
            assert regions.features.shape == (3, 8) and np.isfinite(regions.boxes).all()


def test_a_feature_file_with_a_bad_member_names_it(tmp_path):
    with zipfile.ZipFile(tmp_path / "img.jpg.npz", "w") as archive:
        archive.writestr("box_features.npy", b"not an array")
    with pytest.raises(GenieError, match=r"img\.jpg\.npz"):
        FeatureSource(str(tmp_path), max_regions=3, feature_dim=8).get("img")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("npz")
    for name in ("a", "b"):
        (src / f"{name}.jpg.npz").write_bytes(npz_bytes())
    build_store(src, src.parent / "store", max_regions=4, dtype="float32")
    return src.parent / "store"


@FUZZ
@given(st.data())
def test_feature_store_files(store, data):
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "store"
        copy.mkdir()
        for file in store.iterdir():
            (copy / file.name).write_bytes(file.read_bytes())
        name = data.draw(st.sampled_from(sorted(p.name for p in copy.iterdir())))
        rewrite(copy / name, data.draw(mutated((copy / name).read_bytes())))
        opened = assert_clean(lambda: FeatureStore(copy), copy / name)
        if opened is not None:
            assert opened.read("a", 4).features.shape == (4, 8)


# --- config ------------------------------------------------------------------------------------------

@FUZZ
@given(st.data())
def test_config_files(data):
    original = Path("configs/gmner.yaml").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = rewrite(Path(tmp) / "run.yaml", data.draw(mutated(original)))
        assert_clean(lambda: load_config(path), path)


KEYS = ["train.epochs", "train.learning_rate", "train.batch_size", "data.demo_noise_share", "model.heads",
        "model.dropout", "features.max_regions", "decode.num_beams", "regularizers.alignment", "train.on_nonfinite",
        "train", "train.epochs.x", "nosuch", "model.d_model", "peft.target_modules", "data.on_bad_line",
        "data.context", "data.max_context_tokens"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(SWAPS + ["2", "0.5", "skip", "cag", "- a", "llm,caption", "a|b"])),
                max_size=3))
def test_config_overrides(pairs):
    overrides = [f"{key}={value}" for key, value in pairs]
    try:
        load_config("configs/gmner.yaml", overrides)
    except GenieError as exc:  # names the key at fault (an override's, or the file's)
        assert "\n" not in str(exc) and any(key.split(".")[-1] in str(exc) for key, _ in pairs), str(exc)


# --- the command line --------------------------------------------------------------------------------

WORDS = ["convert", "train", "decode", "evaluate", "features", "build", "verify", "--task", "gmner", "mner", "all",
         "--source", "--split", "train", "--out", "--config", "--checkpoint", "--input", "--output", "--gold", "--pred",
         "--max-regions", "-3", "x", "--src", "--format", "instruction", "--dtype", "float8", "train.epochs=0",
         "--on-bad-line", "skip", "nosuch", "--help", "--context"]


@FUZZ
@given(st.lists(st.sampled_from(WORDS), max_size=8))
def test_command_line(no_training, argv):
    stderr, stdout = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, redirect_stderr(stderr), redirect_stdout(stdout):
        argv = [a if a != "x" else str(Path(tmp) / "x") for a in argv]
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, or a usage mistake
            code = exc.code
    errors = stderr.getvalue().strip().splitlines()
    assert code in (0, 1, 2), (argv, code)
    if code:
        assert len(errors) == 1 and errors[0].startswith("genie: error: "), (argv, errors)


@pytest.fixture(scope="module")
def no_training():
    """No fuzzed command line may start a training run: stop it where it would begin."""
    import genie.training.run

    original = genie.training.run.train

    def refuse(cfg):
        raise GenieError("fuzzing: a valid training command")

    genie.training.run.train = refuse
    yield
    genie.training.run.train = original


def test_the_yaml_of_every_shipped_config_is_valid():
    for path in Path("configs").glob("*.yaml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict)
        load_config(path)
