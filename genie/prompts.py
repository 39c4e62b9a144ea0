"""Instruction templates, kept as data in `prompts/<task>.yaml` (or the file a task names):
several paraphrases per task in a `train` set and a disjoint `heldout` set, `{labels}` standing
for the task's label set.

Each record gets one paraphrase, chosen by a hash of its id: the same on every run and every
process, and spread evenly over the set, so training sees every wording."""

from __future__ import annotations

import string
import zlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from genie.errors import GenieError
from genie.options import PromptSet, words
from genie.records import Record
from genie.tasks import Task


@dataclass(frozen=True)
class Prompts:
    task: Task
    sets: dict[str, tuple[str, ...]]

    def instruction(self, record: Record, which: str = "train") -> str:
        templates = self.sets[which]
        template = templates[zlib.crc32(record.id.encode("utf-8")) % len(templates)]
        return template.format(labels=", ".join(self.task.label_words))


def load_prompts(task: Task, directory: str | Path | None = None) -> Prompts:
    """The task's templates (from `directory/<task>.yaml` when given), checked: both sets present,
    non-empty, disjoint, `{labels}` only."""
    path = Path(directory) / f"{task.name}.yaml" if directory else task.prompts_file
    if not path.is_file():
        raise GenieError(f"no instruction templates for task {task.name}", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise GenieError(f"not valid YAML ({str(exc).splitlines()[0]})", path) from None
    if not isinstance(data, dict) or sorted(data) != sorted(words(PromptSet)):
        raise GenieError(f"templates must be a mapping with exactly the sets {', '.join(words(PromptSet))}", path)
    sets = {}
    for name in words(PromptSet):
        templates = data[name]
        if not isinstance(templates, list) or not templates or not all(isinstance(t, str) for t in templates):
            raise GenieError(f"'{name}' must be a non-empty list of strings", path)
        for template in templates:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if fields != {"labels"}:
                raise GenieError(f"template {template!r} must contain {{labels}} and no other field", path)
        sets[name] = tuple(templates)
    if set(sets["train"]) & set(sets["heldout"]):
        raise GenieError("a held-out template also appears in train", path)
    return Prompts(task, sets)
