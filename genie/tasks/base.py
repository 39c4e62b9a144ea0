"""The task interface and registry: a task is its labels, linearizer, parser, metric and demo.

The training loop, decoder and model only talk to this interface, so a new task is a new
module that calls `register`, nothing else.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Callable

from genie.demo import DemoSpec
from genie.errors import GenieError
from genie.grammar.text import AnyWriter, TextGrammar, Writer
from genie.records import Entity, Record, Relation
from genie.regions.given import objects_first
from genie.regions.npz import RegionFeatures


@dataclass
class Target:
    """A linearized target: the text (or, in the index format, the indices), and for each
    grounding slot its span in the target (chars of `text`, positions of `indices`) and the
    index of the entity it grounds."""

    text: str
    indices: list[int] | None = None
    slots: list[tuple[int, int]] = field(default_factory=list)
    slot_entities: list[int] = field(default_factory=list)


@dataclass
class Parsed:
    """What a parser recovered from one generated sequence. `slots[i]` (a span of the target,
    as in `Target`) grounds `entities[slot_entities[i]]`; relations index `entities`.
    `malformed` counts parts that could not be read, `unmatched` the entities not found in
    the input tokens, `repeated` the exact repeats `as_set` dropped."""

    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    slots: list[tuple[int, int]] = field(default_factory=list)
    slot_entities: list[int] = field(default_factory=list)
    malformed: int = 0
    unmatched: int = 0
    repeated: int = 0

    def as_set(self) -> Parsed:
        """The prediction as a set: a later exact repeat of an entity (span, type and fine type) or,
        when relations are predicted, of a relation (head, tail, label) is dropped and counted. The
        first one stays, with its grounding slot. Scored as a list, each repeat would be a false
        positive; H-Index's evaluation keeps one prediction per span (docs/decoding-and-evaluation.md)."""
        if self.relations:  # relation parsers already share one entity per (span, type)
            kept = list({(r.head, r.tail, r.tail_object, r.type): r for r in self.relations}.values())
            self.repeated += len(self.relations) - len(kept)
            self.relations = kept
            return self
        first: dict[tuple, int] = {}
        renumber: dict[int, int] = {}
        entities = []
        for k, e in enumerate(self.entities):
            key = (e.start, e.end, e.type, e.fine_type)
            if key in first:
                continue
            first[key] = renumber[k] = len(entities)
            entities.append(e)
        self.repeated += len(self.entities) - len(entities)
        pairs = [(slot, renumber[k]) for slot, k in zip(self.slots, self.slot_entities) if k in renumber]
        self.entities, self.slots, self.slot_entities = entities, [s for s, _ in pairs], [k for _, k in pairs]
        return self


class Task:
    """Base class; subclasses set the class attributes (`metric` as a staticmethod of `eval/`) and
    implement `linearize` and `parse`."""

    name: str = ""
    labels: tuple[str, ...] = ()  # entity types, or relation labels for relation tasks
    headline: str = ""  # the metric that selects the checkpoint on dev
    grounded: bool = False  # has a grounding head
    predicts_relations: bool = False  # predicts relations (its headline counts relations, not entities)
    given_entities: int = 0  # entities each record gives as input, not to predict (MRE: head and tail)
    given_objects: int = 0  # objects of the image each record gives as input (`Record.objects`)
    readable_only: tuple[str, ...] = ()  # scores that cannot count unreadable units (they have no type)
    demo: DemoSpec  # the embedded synthetic corpus `make train` uses
    index_format = None  # EntityIndexFormat / TripleIndexFormat, for tasks that have one
    metric: Callable[[list[Record], list[Record]], dict]  # (gold, predicted) -> scores
    # (release folder, split, **options) -> BuildResult: `genie convert --task <name>` (data_builders/)
    builder: Callable
    builder_options: dict[str, str] = {}  # extra `genie convert --<option> PATH` it takes: option -> help
    prompts: str | Path | None = None  # its instruction templates (YAML); None: prompts/<name>.yaml
    # The release names the labels (MORE's rel2id.json), so genie holds no list: a run takes them
    # from its train split (`labels_in`, `with_labels`) and saves them with its checkpoint; `labels`
    # is then the demo's.
    labels_from_data: bool = False

    @property
    def prompts_file(self) -> Path:
        return Path(self.prompts or files("genie.prompt_templates") / f"{self.name}.yaml")

    @property
    def label_words(self) -> tuple[str, ...]:
        """The label set as an instruction names it (`prompts/`)."""
        return tuple(label.replace("_", " ") for label in self.labels)

    def with_labels(self, labels) -> Task:
        """This task over another label set (`labels_from_data`): a copy, the registered task unchanged."""
        task = copy.copy(self)
        task.labels = tuple(labels)
        return task

    def labels_in(self, records: list[Record]) -> tuple[str, ...]:
        """The labels `records` use, sorted: relation types for relation tasks, else entity types."""
        if self.predicts_relations:
            return tuple(sorted({r.type for record in records for r in record.relations}))
        return tuple(sorted({e.fine_type or e.type for record in records for e in record.entities}))

    @property
    def classifies_pair(self) -> bool:
        """The input gives both ends of one relation (two entities, or an entity and an object): the
        answer is its label or None, and the scores include accuracy over all records."""
        return self.predicts_relations and self.given_entities + self.given_objects == 2

    def check_given(self, record: Record) -> None:
        """A record of a task given entities or objects has exactly that many."""
        for what, want, have in (("entities", self.given_entities, record.entities),
                                 ("objects", self.given_objects, record.objects)):
            if want and len(have) != want:
                raise GenieError(f"record {record.id!r}: a {self.name} record gives exactly {want} {what} as input, "
                                 f"got {len(have)}")

    def regions(self, record: Record, regions: RegionFeatures) -> RegionFeatures:
        """The regions the model reads for `record`: the image's, and with given objects, each object's
        region first (`genie.regions.given`), so the model knows which object the record is about."""
        if not self.given_objects:
            return regions
        return objects_first(regions, [o.box for o in record.objects])

    def source_text(self, record: Record) -> str:
        return " ".join(record.tokens)

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        raise NotImplementedError

    def parse(self, text: str, record: Record) -> Parsed:
        raise NotImplementedError

    def text_grammar(self, record: Record, writer: Writer = AnyWriter()) -> TextGrammar:
        """The text targets `parse` reads whole for `record`, with only words `writer` (the
        tokenizer) can write: what constrained text decoding may generate."""
        raise NotImplementedError

    def evaluate(self, gold: list[Record], pred: list[Record]) -> dict:
        """The task's scores; a record of another task, on either side, is an error naming it."""
        for side, records in (("gold", gold), ("predicted", pred)):
            other = next((r for r in records if r.task != self.name), None)
            if other is not None:
                raise GenieError(f"{side} record {other.id!r} is a {other.task} record, not {self.name}: "
                                 f"score it with --task {other.task}")
        return self.metric(gold, pred)


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add `task` to the registry, checked complete: a task missing a part, or one whose name is
    taken, would otherwise fail far from here (or silently replace a built-in task)."""
    kind = type(task).__name__
    if not task.name:
        raise GenieError(f"task {kind} has no name")
    if task.name in TASKS:
        raise GenieError(f"task name '{task.name}' is taken (by {type(TASKS[task.name]).__name__}); "
                         f"give {kind} another name")
    missing = [part for part in ("labels", "headline", "demo", "metric", "builder") if not getattr(task, part, None)]
    missing += [method for method in ("linearize", "parse", "text_grammar")
                if getattr(type(task), method) is getattr(Task, method)]
    if not task.prompts_file.is_file():
        missing.append(f"instruction templates ({task.prompts_file} not found)")
    if missing:
        raise GenieError(f"task '{task.name}' ({kind}) lacks {', '.join(missing)}")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise GenieError(f"unknown task '{name}' (known: {', '.join(sorted(TASKS))})")
    return TASKS[name]
