"""Every registered task: its demo round-trips at exactly 100 F1, uses only the task's labels,
is deterministic, and `make train TASK=<task>` has a config for it."""

from __future__ import annotations

import pytest
from demo_sets import task_config
from roundtrip import assert_perfect

from genie.demo import build_demo
from genie.errors import GenieError
from genie.labels import NO_RELATION
from genie.records import read_records
from genie.tasks import TASKS, Task, register
from genie.training.run_folder import default_output_dir

SMALL = {"n_train": 200, "n_dev": 40, "n_test": 40}


def test_the_five_published_tasks_are_registered():
    assert set(TASKS) >= {"gmner", "mner", "mre", "fmnerg", "jmere"}


def test_register_refuses_a_taken_name_and_an_incomplete_task():
    class Copy(type(TASKS["mner"])):  # a complete task under a built-in's name
        pass

    with pytest.raises(GenieError, match="task name 'mner' is taken \\(by MNER\\); give Copy another name"):
        register(Copy())
    assert type(TASKS["mner"]).__name__ == "MNER"

    class Half(Task):
        name, labels, headline = "half", ("A",), "half"

    with pytest.raises(GenieError, match="task 'half' \\(Half\\) lacks demo, metric, builder, linearize, parse, text_grammar"):
        register(Half())
    assert "half" not in TASKS


@pytest.fixture(scope="module", params=sorted(TASKS))
def demo(request, tmp_path_factory):
    task = TASKS[request.param]
    out = tmp_path_factory.mktemp(task.name)
    return task, out, build_demo(out, task.demo, **SMALL)


def test_demo_round_trips_exactly(demo):
    task, out, _ = demo
    for split in ("train", "dev", "test"):
        assert_perfect(task, read_records(out / f"{split}.jsonl"))


def test_demo_uses_the_task_labels_and_record_shape(demo):
    task, out, counts = demo
    records = read_records(out / "train.jsonl")
    assert {r.task for r in records} == {task.name}
    relations = [rel.type for r in records for rel in r.relations]
    assert counts["train"]["relations"] == len(relations)
    if task.predicts_relations:
        assert set(relations) <= set(task.labels) - {NO_RELATION}
        assert len(set(relations)) >= min(15, len(set(task.labels) - {NO_RELATION}))
    else:
        assert not relations
        types = {e.fine_type or e.type for r in records for e in r.entities}
        assert types <= set(task.labels) and len(types) >= min(len(task.labels), 30) - 1
    if task.given_entities:
        assert all(len(r.entities) == task.given_entities for r in records)
    assert all(len(r.objects) == task.given_objects for r in records)
    if task.classifies_pair:
        none_share = sum(not r.relations for r in records) / len(records)
        assert 0.2 < none_share < 0.5
    if task.grounded:
        assert 0.3 < counts["train"]["groundable"] / counts["train"]["entities"] < 0.7
    else:
        assert counts["train"]["boxes"] == 0


def test_demo_is_deterministic(demo, tmp_path):
    task, out, counts = demo
    assert build_demo(tmp_path, task.demo, **SMALL) == counts
    for split in ("train", "dev", "test"):
        assert (tmp_path / f"{split}.jsonl").read_bytes() == (out / f"{split}.jsonl").read_bytes()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_task_has_a_config_that_names_it(name):
    cfg = task_config(name)
    assert cfg.task == name and default_output_dir(cfg) == f"runs/{name}" and cfg.data.dir is None
