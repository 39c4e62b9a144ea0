"""Instruction format: templates as data, `genie convert --format instruction` (one task or all),
and reading the lines back as training data."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from demo_sets import small_demos
from roundtrip import assert_perfect
from test_cli import assert_one_line_error, genie

from genie.errors import GenieError
from genie.instructions import KEYS, read_examples
from genie.options import PromptSet
from genie.prompts import load_prompts
from genie.records import Record, read_records
from genie.tasks import TASKS, get_task


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return small_demos(tmp_path_factory.mktemp("demos"), n_train=5, n_dev=40, n_test=5, feature_dim=4)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_templates_insert_the_label_set_and_spread_over_records(name):
    task = get_task(name)
    prompts = load_prompts(task)
    assert not set(prompts.sets["train"]) & set(prompts.sets["heldout"])
    records = [Record(f"r{k}", name, ["x"], "i") for k in range(400)]
    for which in PromptSet:
        seen = Counter(prompts.instruction(r, which) for r in records)
        assert len(seen) == len(prompts.sets[which])  # every paraphrase is used
        for instruction in seen:
            assert ", ".join(task.label_words) in instruction
    # The choice depends on the record only: the same on every call (and process).
    assert prompts.instruction(records[7]) == prompts.instruction(Record("r7", name, ["y"], "j"))


@pytest.mark.parametrize("text, message", [
    ("train: ['a {labels}']\n", "exactly the sets train, heldout"),
    ("train: ['a {labels}']\nheldout: []\n", "'heldout' must be a non-empty list"),
    ("train: ['no labels']\nheldout: ['b {labels}']\n", "must contain {labels}"),
    ("train: ['a {labels} {task}']\nheldout: ['b {labels}']\n", "no other field"),
    ("train: ['a {labels}']\nheldout: ['a {labels}']\n", "held-out template also appears in train"),
    ("train: [a\n", "not valid YAML"),
])
def test_bad_template_files_name_the_file(tmp_path, text, message):
    (tmp_path / "mner.yaml").write_text(text)
    with pytest.raises(GenieError, match=message) as err:
        load_prompts(get_task("mner"), tmp_path)
    assert str(tmp_path / "mner.yaml") in str(err.value)


@pytest.mark.parametrize("fmt", ["text", "index"])
def test_convert_all_writes_each_task_target_and_reads_back(demos, tmp_path, fmt):
    out = tmp_path / "all.jsonl"
    tasks = sorted(TASKS) if fmt == "text" else sorted(n for n, t in TASKS.items() if t.index_format)
    for name in set(TASKS) - set(tasks):
        (demos / name / "dev.jsonl").rename(demos / name / "dev.hidden")
    try:
        result = genie("convert", "--task", "all", "--source", str(demos), "--split", "dev", "--out", str(out),
                       "--format", "instruction", "--target-format", fmt)
    finally:
        for name in set(TASKS) - set(tasks):
            (demos / name / "dev.hidden").rename(demos / name / "dev.jsonl")
    assert result.returncode == 0, result.stderr
    assert {k: v for k, v in json.loads(result.stdout).items() if k in TASKS} == {n: 40 for n in tasks}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    records, instructions = read_examples(out)
    for name in tasks:
        task, prompts = get_task(name), load_prompts(get_task(name))
        gold = read_records(demos / name / "dev.jsonl")
        mine = [(line, r, i) for line, r, i in zip(lines, records, instructions) if line["task"] == name]
        assert [r for _, r, _ in mine] == gold
        for line, record, instruction in mine:
            assert sorted(line) == sorted(KEYS)
            assert line["instruction"] == instruction == prompts.instruction(record, "train")
            assert (line["input"], line["image_id"]) == (task.source_text(record), record.image_id)
            expected = (task.linearize(record).text if fmt == "text" else
                        task.index_format.linearize(record, [e.groundable for e in record.entities]).indices)
            assert line["output"] == expected
        assert_perfect(task, gold)  # those targets parse back to 100 F1


def test_heldout_prompts_and_index_errors(demos, tmp_path):
    out = tmp_path / "mre.jsonl"
    result = genie("convert", "--task", "all", "--source", str(demos), "--split", "test", "--out", str(out),
                   "--format", "instruction", "--prompts", "heldout")
    assert result.returncode == 0, result.stderr
    heldout = {t for name in TASKS for t in load_prompts(get_task(name)).sets["heldout"]}
    records, instructions = read_examples(out)
    assert all(any(i.startswith(t.split("{labels}")[0]) for t in heldout) for i in instructions)
    assert_one_line_error(genie("convert", "--task", "all", "--source", str(demos), "--split", "test", "--out",
                                str(out), "--format", "instruction", "--target-format", "index"),
                          f"task {min(n for n in TASKS if get_task(n).index_format is None)} has no index target format")
    assert_one_line_error(genie("convert", "--task", "all", "--source", str(demos), "--split", "test",
                                "--out", str(out)), "--format instruction")


@pytest.mark.parametrize("mutate, message", [
    (lambda line: line.pop("output"), "instruction line is missing output"),
    (lambda line: line.update(task="mre"), "differs from its record's"),
    (lambda line: line["record"].pop("tokens"), "record is missing tokens"),
    (lambda line: line.update(instruction=3), "'instruction' must be a string"),
])
def test_bad_instruction_lines_name_file_and_line(demos, tmp_path, mutate, message):
    out = tmp_path / "mner.jsonl"
    assert genie("convert", "--task", "all", "--source", str(demos), "--split", "train", "--out", str(out),
                 "--format", "instruction").returncode == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    mutate(lines[2])
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(GenieError, match=message) as err:
        read_examples(out)
    assert str(err.value).startswith(f"{out}:3:")
    plain = [json.dumps(r.to_dict()) for r in read_records(demos / "mner" / "train.jsonl")]
    out.write_text(plain[0] + "\n" + json.dumps(lines[0]) + "\n")
    with pytest.raises(GenieError, match=f"{out}:2: .*mixes instruction-format and plain record lines"):
        read_examples(out)
