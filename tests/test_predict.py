"""`genie predict` and the Python API on the default GMNER run: raw text in, the same entities
and boxes `genie decode` finds, with character offsets; images through a detector; failures
counted, a killed predict resumed."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from cli_output import run_cli
from PIL import Image

from genie import Extractor
from genie.config import load_config
from genie.errors import GenieError
from genie.inference.files import decode_file
from genie.inference.journal import OutputJournal
from genie.records import read_records, write_records
from genie.regions.random_detectors import save_random_detector

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gmner_default_run")]


def demo_posts(out, path, n=None) -> tuple:
    """The demo's test tweets as raw posts (space-joined text, the image by id), and the records."""
    demo = load_config(out / "genie.yaml").data.demo_dir
    records = read_records(f"{demo}/gmner/test.jsonl")[:n]
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"id": r.id, "text": " ".join(r.tokens), "image": r.image_id}) + "\n" for r in records)
    return records, f"{demo}/gmner/features"


def predict(capsys, *args) -> tuple[int, dict | str]:
    return run_cli(capsys, "predict", *args)


def test_predict_on_raw_text_finds_what_decode_finds(default_run, tmp_path, capsys, caplog):
    _, out = default_run
    records, features = demo_posts(out, tmp_path / "posts.jsonl")
    with caplog.at_level(logging.WARNING):
        code, summary = predict(capsys, "--checkpoint", out / "best", "--input", tmp_path / "posts.jsonl",
                                "--output", tmp_path / "preds.jsonl", "--features", features)
    assert code == 0, summary
    assert not [r for r in caplog.records if "trained on" in r.getMessage()]  # the training's own regions
    assert summary["posts"] == len(records) and summary["without_image"] == summary["missing_images"] == 0
    write_records(tmp_path / "gold.jsonl", records)
    decode_file(out / "best", tmp_path / "gold.jsonl", tmp_path / "decoded.jsonl")
    decoded = read_records(tmp_path / "decoded.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == [r.id for r in records]
    assert [[(e["start"], e["end"], e["type"], e["boxes"]) for e in line["entities"]] for line in lines] == \
        [[(e.start, e.end, e.type, e.boxes) for e in r.entities] for r in decoded]
    assert sum(len(line["entities"]) for line in lines) > 0.8 * sum(len(r.entities) for r in records)
    for line in lines:
        for entity in line["entities"]:
            assert line["text"][entity["char_start"]:entity["char_end"]] == entity["text"]
            assert entity["text"] == " ".join(line["tokens"][entity["start"]:entity["end"]])


def write_images(folder, ids, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k, key in enumerate(ids):
        size = (80 + 20 * k, 60 + 10 * k, 3)
        Image.fromarray(rng.integers(0, 255, size, np.uint8)).save(folder / f"{key}.{'png' if k % 2 else 'jpg'}")


def test_predict_with_a_detector_from_raw_posts_and_the_api_agree(default_run, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, out = default_run
    detector = save_random_detector("detr", tmp_path / "detr", dim=load_config(out / "genie.yaml").features.dim)
    images = tmp_path / "images"
    write_images(images, ["a", "b"])
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    posts = [{"id": "p1", "text": "RT @nasa : Rihanna spotted in Paris !", "image": "a"},
             {"id": "p2", "text": "Zuckerberg and Obama ... #news", "image": str(images / "b.png")},
             {"id": "p3", "text": "no picture here", "image": "gone.jpg"},
             {"id": "p4", "text": "broken picture", "image": "broken.jpg"}]
    lines = [json.dumps(p) for p in posts] + ["just a plain line of text"]
    (tmp_path / "posts.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["--checkpoint", out / "best", "--input", tmp_path / "posts.jsonl", "--output", tmp_path / "preds.jsonl",
            "--images", images]
    code, err = predict(capsys, *args)
    assert code == 2 and "pass --detector" in err, err  # demo regions: no detector to reuse
    extractor = Extractor.from_pretrained(out / "best", device="cpu")
    with pytest.raises(GenieError, match="pass detector=NAME_OR_FOLDER"):  # the API's own words
        extractor.predict(posts, images=images)
    with caplog.at_level(logging.WARNING):
        code, summary = predict(capsys, *args, "--detector", detector)
    assert code == 0, summary
    warning = next(r.getMessage() for r in caplog.records if "trained on" in r.getMessage())
    assert "demo" in warning and "detr" in warning  # names both extractors
    assert (summary["posts"], summary["without_image"], summary["missing_images"], summary["bad_images"]) == \
        (5, 1, 1, 1)
    assert (summary["first_missing_image"], summary["first_bad_image"]) == ("gone.jpg", "broken.jpg")
    assert summary["features"] == "region features: all 2 images found"  # the bad one is counted once, as bad
    regions = tmp_path / "preds.jsonl.regions"
    assert sorted(p.name for p in regions.glob("*.npz")) == ["a.jpg.npz", "b.jpg.npz"]
    cli = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert [line["id"] for line in cli] == ["p1", "p2", "p3", "p4", "5"]
    assert cli[0]["tokens"] == ["RT", "@nasa", ":", "Rihanna", "spotted", "in", "Paris", "!"]
    api = extractor.predict([*posts, "just a plain line of text"], images=images, detector=detector)
    assert api == cli  # the API is what the command runs; a post's id: its line number, its position from 1
    assert api.summary == {key: summary[key] for key in api.summary}  # and counts what the command prints


def test_the_readme_example_without_its_files_says_so(default_run, tmp_path, caplog, monkeypatch):
    """README's call in an empty folder: a detector that is not there is an error even when no
    image needs it, and an image that is not there is counted and warned of."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    _, out = default_run
    extractor = Extractor.from_pretrained(out / "best", device="cpu")
    posts = [{"text": "Obama visits Paris", "image": "photos/1.jpg"}]
    with pytest.raises(GenieError, match="detectors/tiny-detr"):  # not there: never silent
        extractor.predict(posts, detector="detectors/tiny-detr")
    save_random_detector("detr", tmp_path / "detectors" / "tiny-detr", dim=load_config(out / "genie.yaml").features.dim)
    with caplog.at_level(logging.WARNING):
        records = extractor.predict(posts, detector="detectors/tiny-detr")
    assert records[0]["id"] == "1" and records[0]["image_id"] == ""
    assert (records.summary["missing_images"], records.summary["first_missing_image"]) == (1, "photos/1.jpg")
    assert records.summary["features"] == "region features: none (no post's image to read)"
    assert any("1 post(s) name an image not found" in r.getMessage() for r in caplog.records)
    with pytest.raises(GenieError, match=r"post 2: not a post: a JSON array, not a post object; .*input_format=\"text\""):
        extractor.predict(["fine", '["a", "list"]'])
    assert extractor.predict(['["a", "list"]'], input_format="text")[0]["text"] == '["a", "list"]'


def test_predict_counts_what_a_region_folder_lacks_and_reads_plain_text_as_asked(default_run, tmp_path, capsys):
    _, out = default_run
    records, features = demo_posts(out, tmp_path / "demo.jsonl", n=1)
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"text": "Obama visits Paris", "image": records[0].image_id}) + "\n\n"
                     + json.dumps({"text": "Obama visits Rome", "image": "nope"}) + "\n", encoding="utf-8")
    args = ["--checkpoint", out / "best", "--features", features]
    code, summary = predict(capsys, *args, "--input", posts, "--output", tmp_path / "preds.jsonl")
    assert code == 0, summary
    assert (summary["posts"], summary["blank_lines"], summary["missing_images"], summary["first_missing_image"]) == \
        (2, 1, 1, "nope")
    assert summary["features"] == "region features: all 1 images found"  # the missing one is counted once
    text = tmp_path / "posts.txt"
    text.write_text("{braces} Obama visits Paris\n", encoding="utf-8")
    code, err = predict(capsys, *args, "--input", text, "--output", tmp_path / "text.jsonl")
    assert code == 2 and "posts.txt:1: not a post: not valid JSON" in err and "--input-format text" in err, err
    code, summary = predict(capsys, *args, "--input", text, "--output", tmp_path / "text.jsonl", "--input-format", "text")
    assert code == 0 and summary["features"] == "region features: none (no post's image to read)", summary
    line = json.loads((tmp_path / "text.jsonl").read_text())
    assert (line["id"], line["text"]) == ("1", "{braces} Obama visits Paris")


def test_a_killed_predict_resumes(default_run, tmp_path, capsys, monkeypatch):
    _, out = default_run
    _, features = demo_posts(out, tmp_path / "posts.jsonl", n=30)
    args = ["--checkpoint", out / "best", "--input", tmp_path / "posts.jsonl", "--features", features,
            "--batch-size", "4", "decode.chunk_size=8"]
    code, whole = predict(capsys, *args, "--output", tmp_path / "whole.jsonl")
    assert code == 0
    real_add = OutputJournal.add
    calls = []

    def add_then_die(self, rows, *more):
        real_add(self, rows, *more)
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(OutputJournal, "add", add_then_die)
    assert predict(capsys, *args, "--output", tmp_path / "preds.jsonl")[0] == 130
    assert calls == [8, 8] and not (tmp_path / "preds.jsonl").exists()
    partial = (tmp_path / "preds.jsonl.partial").read_text()
    assert partial == "".join((tmp_path / "whole.jsonl").read_text().splitlines(keepends=True)[:16])  # grows as it goes
    monkeypatch.setattr(OutputJournal, "add", real_add)
    code, summary = predict(capsys, *args, "--output", tmp_path / "preds.jsonl")
    assert code == 0 and summary["resumed_with"] == 16
    # Every count covers the whole file; the feature report, the images this run read.
    assert summary["features"] == "region features: all 14 images found"
    assert {k: v for k, v in summary.items() if k not in ("resumed_with", "seconds", "records_per_second", "output",
                                                          "features")} \
        == {k: v for k, v in whole.items() if k not in ("seconds", "records_per_second", "output", "features")}
    assert (tmp_path / "preds.jsonl").read_text() == (tmp_path / "whole.jsonl").read_text()
    assert not (tmp_path / "preds.jsonl.partial").exists() and not (tmp_path / "preds.jsonl.journal").exists()


def test_the_readme_python_example_runs_on_the_demo_checkpoint(default_run, tmp_path, monkeypatch):
    """README's Python block, run as written, in a folder laid out as its commands leave one."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, out = default_run
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", readme, re.DOTALL).group(1)
    (tmp_path / "runs" / "gmner").mkdir(parents=True)
    (tmp_path / "runs" / "gmner" / "best").symlink_to(out / "best")
    save_random_detector("detr", tmp_path / "detectors" / "tiny-detr")
    write_images(tmp_path / "photos", ["1"])
    monkeypatch.chdir(tmp_path)
    *setup, last = block.strip().splitlines()
    scope: dict = {}
    exec(compile("\n".join(setup), "README.md", "exec"), scope)
    records = eval(compile(last, "README.md", "eval"), scope)  # the example's last line: its result
    assert isinstance(scope["extractor"], Extractor) and len(records) == 1 and records[0]["text"] == "Obama visits Paris"
    assert (tmp_path / "photos" / "1.jpg").is_file() and records[0]["image"] == "photos/1.jpg"


def test_a_post_of_ten_thousand_words_is_predicted_in_bounded_time_and_memory(default_run, tmp_path):
    """The demo's tweets run together into one post of 10,000 words the model writes mentions
    for: the model reads its window, the grammar offers only those words, and the run stays far
    inside bounds a slow machine meets (before the window bound, 2,000 words took 24 GB in three
    minutes). A separate process, so its peak memory is its own, under a limit of 10 CPU minutes
    (it takes seconds) that ends it if the grammar's work grows with the post again."""
    import os
    import resource
    import subprocess
    import sys

    _, out = default_run
    demo = load_config(out / "genie.yaml").data.demo_dir
    words = [word for record in read_records(f"{demo}/gmner/train.jsonl") for word in record.tokens][:10_000]
    assert len(words) == 10_000
    (tmp_path / "post.jsonl").write_text(json.dumps({"id": "long", "text": " ".join(words)}) + "\n")
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "genie.cli", "predict", "--checkpoint", str(out / "best"),
                                 "--input", str(tmp_path / "post.jsonl"), "--output", str(tmp_path / "preds.jsonl")],
                                stdout=stdout, stderr=stderr,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CPU, (600, 600)))
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        finally:
            proc.kill()
    assert os.waitstatus_to_exitcode(status) == 0, (tmp_path / "stderr").read_text()
    assert usage.ru_maxrss < 3_000_000  # KB
    done = (tmp_path / "stdout").read_text()
    summary = json.loads(done[done.index("{"):done.rindex("}") + 1])
    assert summary["truncated_posts"] == 1 and summary["dead_ends"] == 0
    line = json.loads((tmp_path / "preds.jsonl").read_text())
    assert line["entities"] and max(e["end"] for e in line["entities"]) < 200  # in the window, at the start
