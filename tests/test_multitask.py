"""One model for several tasks: the config, temperature-scaled sampling, and a run that trains
on a mixture, selects on the mean of the tasks' headline F1, and decodes a mixed file with each
task's own parser.

The run is short (instructions make sources 2-9x longer, docs/instructions-multitask-lora.md), so
it checks the mechanics: scores per task, their mean, decode order and parsers, not the >= 85 a
full run must reach."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import pytest

from genie import Extractor
from genie.config import load_config
from genie.errors import GenieError
from genie.prompts import load_prompts
from genie.records import Record, read_records
from genie.tasks import TASKS, get_task
from genie.training.run import train
from genie.training.run_setup import instructions_for, run_tasks
from genie.training.sampling import TemperatureSampler, task_probabilities


def test_task_lists_are_checked():
    assert [t.name for t in run_tasks(load_config("configs/gmner.yaml", ["task=[mner, mre]"]))] == ["mner", "mre"]
    with pytest.raises(GenieError, match="distinct tasks"):
        run_tasks(load_config("configs/gmner.yaml", ["task=[mner, mner]"]))
    with pytest.raises(GenieError, match="unknown task 'ner'"):
        run_tasks(load_config("configs/gmner.yaml", ["task=[mner, ner]"]))
    with pytest.raises(GenieError, match="multi-task runs use target_format=text"):
        run_tasks(load_config("configs/gmner.yaml", ["task=[mner, gmner]", "target_format=index"]))
    with pytest.raises(GenieError, match="data.sampling. must be one of proportional, temperature"):
        load_config("configs/gmner.yaml", ["data.sampling=uniform"])


def test_sources_name_the_task_in_a_mixture():
    records = [Record("a", "mner", ["Obama"], "1"), Record("b", "mner", ["Pak"], "2")]
    mner = get_task("mner")
    assert instructions_for(load_config("configs/mner.yaml"), mner, records, None) is None
    mixture = load_config("configs/multitask.yaml")
    assert instructions_for(mixture, mner, records, None) == ["mner:", "mner:"]
    prompted = instructions_for(load_config("configs/multitask.yaml", ["prompts.use=true"]), mner, records, None)
    assert prompted == [load_prompts(mner).instruction(r) for r in records]
    assert instructions_for(load_config("configs/mner.yaml", ["prompts.use=true"]), mner, records, ["x", "y"]) == ["x", "y"]


def test_temperature_scales_task_probabilities():
    sizes = [900, 100]
    assert task_probabilities(sizes, 1.0).tolist() == pytest.approx([0.9, 0.1])
    assert task_probabilities(sizes, 2.0).tolist() == pytest.approx([30 / 40, 10 / 40])
    assert task_probabilities(sizes, 1e6).tolist() == pytest.approx([0.5, 0.5], abs=1e-4)


def test_temperature_sampler_draws_by_task_and_repeats_per_epoch():
    sampler = TemperatureSampler([900, 100], temperature=2.0, seed=3)
    first = list(sampler)
    assert len(first) == 1000 and all(0 <= i < 1000 for i in first)
    small = Counter(i for i in first if i >= 900)
    assert abs(sum(small.values()) - 250) < 50  # p = 1/4 instead of 1/10
    # The small task is cycled through whole shuffles: every example drawn k or k + 1 times.
    cycles = sum(small.values()) // 100
    assert len(small) == 100 and set(small.values()) <= {cycles, cycles + 1}
    assert list(sampler) == first  # same epoch, same order (a resumed run sees the same batches)
    sampler.set_epoch(1)
    assert list(sampler) != first


@pytest.mark.slow
def test_a_multi_task_run_reports_each_task_and_decodes_a_mixed_file(tmp_path):
    out, demo = tmp_path / "run", tmp_path / "demo"
    metrics = train(load_config("configs/multitask.yaml", [
        "task=[mner, mre]", f"train.output_dir={out}", f"data.demo_dir={demo}", "data.demo_train_tweets=400",
        "train.epochs=2", "train.eval_every_epochs=1", "data.sampling=temperature", "prompts.use=true",
        "decode.max_new_tokens=24"]))  # a barely trained model writes to the limit: keep decoding short
    assert set(metrics) >= {"mner", "mre", "mean", "dev_best"}
    assert metrics["mean"] == pytest.approx((metrics["mner"]["mner"]["f1"] + metrics["mre"]["mre"]["f1"]) / 2)
    gold = {name: read_records(demo / name / "test.jsonl") for name in ("mner", "mre")}
    assert metrics["mner"]["mner"]["gold"] == sum(len(r.entities) for r in gold["mner"])
    assert metrics["mre"]["mre"]["gold"] == sum(len(r.relations) for r in gold["mre"])
    for name in gold:  # each task's own grammar constrains its part of the decoding
        assert metrics[name]["parser"]["malformed"] == metrics[name]["parser"]["unmatched"] == 0
    predictions = read_records(out / "test_predictions.jsonl")
    assert [r.id for r in predictions] == [r.id for name in ("mner", "mre") for r in gold[name]]

    # A mixed instruction file, interleaved: decoded in input order, each task by its parser.
    mixed = tmp_path / "mixed.jsonl"
    assert subprocess.run([sys.executable, "-m", "genie.cli", "convert", "--task", "all", "--source", str(demo),
                           "--split", "test", "--out", str(mixed), "--format", "instruction"]).returncode == 0
    lines = mixed.read_text().splitlines()
    mixed.write_text("\n".join(lines[::2] + lines[1::2]) + "\n")
    preds = tmp_path / "preds.jsonl"
    for extra in ([], ["prompts.set=heldout"]):
        decoded = subprocess.run([sys.executable, "-m", "genie.cli", "decode", "--checkpoint", str(out / "best"),
                                  "--input", str(mixed), "--output", str(preds), *extra], capture_output=True, text=True)
        assert decoded.returncode == 0, decoded.stderr
        order = [json.loads(line)["record"]["id"] for line in mixed.read_text().splitlines()]
        assert [r.id for r in read_records(preds)] == order
    # With instruction files, the file's instructions are the ones used, so the scores match the run.
    by_task = {name: [r for r in read_records(preds) if r.task == name] for name in gold}
    for name in gold:
        ids = {r.id: r for r in by_task[name]}
        assert get_task(name).evaluate(gold[name], [ids[r.id] for r in gold[name]])[name] == metrics[name][name]
    # Records with held-out paraphrases: a robustness score, reported by `genie evaluate`.
    heldout = tmp_path / "heldout.jsonl"
    decoded = subprocess.run([sys.executable, "-m", "genie.cli", "decode", "--checkpoint", str(out / "best"),
                              "--input", str(demo / "mre" / "test.jsonl"), "--output", str(heldout),
                              "prompts.set=heldout"], capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    scored = subprocess.run([sys.executable, "-m", "genie.cli", "evaluate", "--task", "mre", "--gold",
                             str(demo / "mre" / "test.jsonl"), "--pred", str(heldout)], capture_output=True, text=True)
    assert json.loads(scored.stdout)["mre"]["gold"] == metrics["mre"]["mre"]["gold"]

    # The Python API on a multi-task model: raw posts of the task asked for, as its records decode.
    extractor = Extractor.from_pretrained(out / "best", device="cpu")
    with pytest.raises(GenieError, match="say which task"):
        extractor.predict(["a post"])
    with pytest.raises(GenieError, match="given entities as input"):
        extractor.predict(["a post"], task="mre")
    records = gold["mner"][:24]
    posts = [{"id": r.id, "text": " ".join(r.tokens), "image": r.image_id} for r in records]
    predicted = extractor.predict(posts, task="mner", features=demo / "mner" / "features")
    decoded, _, _ = extractor.decode([replace(r, entities=[]) for r in records])
    assert [[(e["start"], e["end"], e["type"]) for e in p["entities"]] for p in predicted] == \
        [[(e.start, e.end, e.type) for e in r.entities] for r in decoded]


@pytest.mark.full
def test_the_shipped_multitask_model_reaches_85_on_every_task(tmp_path):
    """`make train TASK=multitask` as shipped: one tiny T5 for every registered task's demo. About 35 CPU minutes,
    as long as the five single-task runs together, so it runs with `make test-full`, not `make test`."""
    metrics = train(load_config("configs/multitask.yaml", [f"train.output_dir={tmp_path / 'run'}",
                                                           f"data.demo_dir={tmp_path / 'demo'}"]))
    for name, task in TASKS.items():
        assert metrics[name][task.headline]["f1"] >= 85.0, (name, metrics[name][task.headline])
        assert metrics[name][task.headline]["gold"] > 0
    assert len(read_records(tmp_path / "run" / "test_predictions.jsonl")) == len(TASKS) * 300
