"""The CLI as a user runs it: bad input gives one clear line (file, line, problem), exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from genie.records import Entity, Record, write_records
from genie.tasks import TASKS


def genie(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genie.cli", *args], capture_output=True, text=True)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def gmner_release(root, conll: str, xml: dict[str, str] | None = None):
    (root / "txt").mkdir(parents=True)
    (root / "xml").mkdir()
    (root / "txt" / "test.txt").write_text(conll)
    for name, text in (xml or {}).items():
        (root / "xml" / f"{name}.xml").write_text(text)
    return root


GOOD_XML = ("<annotation><size><width>100</width><height>100</height></size><object><name>Obama</name>"
            "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>")


def test_convert_prints_counts_and_writes_records(tmp_path):
    src = gmner_release(tmp_path / "rel", "IMGID:1\nObama\tB-PER\nin\tO\nPak\tB-LOC\n\nIMGID:2\nhi\tO\n",
                        {"1": GOOD_XML})
    result = genie("convert", "--task", "gmner", "--source", str(src), "--split", "test",
                   "--out", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert (counts["tweets"], counts["entities"], counts["groundable_entities"], counts["boxes"]) == (2, 2, 1, 1)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows[0]["entities"][0]["boxes"] == [[1, 2, 30, 40]] and rows[0]["entities"][1]["boxes"] == []


def test_convert_real_v2_test_split(shared_datasets, tmp_path):
    result = genie("convert", "--task", "gmner", "--source",
                   str(shared_datasets / "twitter-gmner" / "Twitter10000_v2.0"), "--split", "test",
                   "--out", str(tmp_path / "test.jsonl"))
    counts = json.loads(result.stdout)
    assert (counts["tweets"], counts["entities"], counts["groundable_entities"], counts["boxes"]) == \
        (1500, 2543, 1046, 1254)


def test_malformed_conll_line(tmp_path):
    src = gmner_release(tmp_path / "rel", "IMGID:1\nObama\tB-PER\nbroken line without tag\n")
    result = genie("convert", "--task", "gmner", "--source", str(src), "--split", "test",
                   "--out", str(tmp_path / "out.jsonl"))
    assert_one_line_error(result, f"{src / 'txt' / 'test.txt'}:3")
    assert not (tmp_path / "out.jsonl").exists()


def test_broken_xml(tmp_path):
    src = gmner_release(tmp_path / "rel", "IMGID:1\nObama\tB-PER\n", {"1": "<annotation><object>"})
    result = genie("convert", "--task", "gmner", "--source", str(src), "--split", "test",
                   "--out", str(tmp_path / "out.jsonl"))
    assert_one_line_error(result, str(src / "xml" / "1.xml"), "XML")


@pytest.mark.parametrize("line, problem", [
    ("this is not json", "not valid JSON"),
    ('["a list"]', "not a genie record"),
    ('{"id": "1", "task": "gmner", "tokens": ["a"], "image_id": "x",'
     ' "entities": [{"start": 0, "end": 3, "type": "PER"}]}', "fall outside its 1 tokens"),
])
def test_bad_record_lines(tmp_path, line, problem):
    good = Record("0", "gmner", ["Obama"], "x", [Entity(0, 1, "Obama", "PER", [])])
    gold = tmp_path / "gold.jsonl"
    write_records(gold, [good])
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps(good.to_dict()) + "\n" + line + "\n")
    result = genie("evaluate", "--task", "gmner", "--gold", str(gold), "--pred", str(pred))
    assert_one_line_error(result, f"{pred}:2", problem)


def test_unknown_config_key_and_missing_file(tmp_path):
    assert_one_line_error(genie("train", "--config", "configs/gmner.yaml", "train.epoch=1"),
                          "unknown config key 'train.epoch'")
    assert_one_line_error(genie("evaluate", "--task", "gmner", "--gold", str(tmp_path / "no.jsonl"),
                                "--pred", str(tmp_path / "no.jsonl")), "no such file")


@pytest.mark.parametrize("task, source, counts", [
    ("mner", "twitter-mner/data/twitter2017", {"tweets": 723, "orphan_i_tags": 0}),
    ("mre", "mnre", {"instances": 1614, "relations": 640, "labels": 21}),
    ("jmere", "mnre", {"sentences": 460, "triples": 640}),
])
def test_convert_every_task_prints_its_counts(shared_datasets, tmp_path, task, source, counts):
    out = tmp_path / "test.jsonl"
    result = genie("convert", "--task", task, "--source", str(shared_datasets / source), "--split", "test",
                   "--out", str(out))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert {k: printed[k] for k in counts} == counts
    assert printed["records"] == len(out.read_text().splitlines()) > 0


def test_xml_option_is_for_fmnerg_only(tmp_path):
    assert_one_line_error(genie("convert", "--task", "gmner", "--source", str(tmp_path), "--split", "test",
                                "--out", str(tmp_path / "o.jsonl"), "--xml", str(tmp_path)),
                          "--xml applies to --task fmnerg only")


def test_an_unknown_task_without_a_config_is_the_one_line():
    """`make train TASK=gmnre` (no configs/gmnre.yaml): the error alone, not first a word on
    what would run with the default settings."""
    assert_one_line_error(genie("train", "task=gmnre"), f"unknown task 'gmnre' (known: {', '.join(sorted(TASKS))})")
    known = genie("train", "task=mner", "model.name=./no-such-model")  # a known task: the word, then the run's error
    note, error = known.stderr.splitlines()
    assert note.startswith("genie: no --config: mner with the default settings"), known.stderr
    assert error.startswith("genie: error: ./no-such-model: no such local folder"), known.stderr


@pytest.mark.parametrize("command", ["predict", "decode"])
def test_an_output_that_is_the_input_is_refused_before_anything_is_written(tmp_path, capsys, command):
    from cli_output import run_cli

    posts = tmp_path / "posts.txt"
    posts.write_text("Obama visits Paris\n")
    (tmp_path / "link.txt").symlink_to(posts)
    (tmp_path / "hard.txt").hardlink_to(posts)
    for output in (posts, tmp_path / "link.txt", tmp_path / "hard.txt", tmp_path / "sub" / ".." / "posts.txt"):
        code, err = run_cli(capsys, command, "--checkpoint", tmp_path / "no-run", "--input", posts, "--output", output)
        assert code == 2 and err.startswith(f"genie: error: {output}: the output is the input file {posts}"), err
    assert posts.read_text() == "Obama visits Paris\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.txt", "link.txt", "posts.txt"]


def test_decode_and_predict_end_with_where_the_predictions_are():
    from genie.cli import written_headline

    assert written_headline({"output": "p.jsonl", "malformed": 0}, 5) == "genie: 5 predictions in p.jsonl"
    assert written_headline({"output": "p.jsonl", "repeated": 2, "missing_images": 1}, 5) == \
        "genie: 5 predictions in p.jsonl (repeated 2, missing images 1)"


def test_the_stop_handler_is_gone_once_a_run_is_over(monkeypatch, tmp_path, capsys):
    """SIGTERM is one line while a run trains; after it, a second stop (a scheduler's, while
    Python shuts down) finds the handler it had before, not one that raises in a dying process."""
    import signal

    import genie.training.run
    from genie.cli import _interrupt, main
    from genie.training.run_folder import Interrupted

    seen = []

    def stopped(cfg):
        seen.append(signal.getsignal(signal.SIGTERM))
        raise Interrupted(tmp_path, None)

    monkeypatch.setattr(genie.training.run, "train", stopped)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["train", "--config", "configs/mner.yaml", f"train.output_dir={tmp_path}"]) == 130
    assert seen == [_interrupt] and signal.getsignal(signal.SIGTERM) is before
    assert "interrupted; no checkpoint yet" in capsys.readouterr().err


@pytest.mark.parametrize("world_size, shutdown", [("1", True), ("2", False)])
def test_a_launched_process_ends_without_the_interpreters_shutdown(tmp_path, world_size, shutdown):
    """A process of `accelerate launch` skips Python's shutdown, where DeepSpeed runs aborted;
    its output and exit code are kept. A single process shuts down as usual."""
    script = ("import atexit, sys; from genie.cli import main; "
              "atexit.register(lambda: print('interpreter shutdown')); "
              f"sys.exit(main(['evaluate', '--task', 'mner', '--gold', {str(tmp_path / 'no.jsonl')!r}, "
              f"'--pred', {str(tmp_path / 'no.jsonl')!r}]))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "WORLD_SIZE": world_size})
    assert_one_line_error(result, "no such file")
    assert ("interpreter shutdown" in result.stdout) == shutdown
