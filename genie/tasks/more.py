"""MORE (ACM MM 2023): the relation between an entity of the text and a given object of the image.

A record gives the entity (entity 0, its span in the tweet) and the object (object 0: its name
and box, `Record.objects`); the answer is the relation from the entity to the object, or None.
The source marks the entity and names the object, "[h] Obama [/h] waves at the crowd [o] person";
the object's own region is the first the model reads (`Task.regions`). The target is the relation
in words, "/per/obj/holds" -> "per obj holds", None -> "none".

The release names its relations (`rel2id.json`), so genie keeps no list of them: a run takes the
labels of its train split (`labels_from_data`); `labels` below are the demo's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from genie.data_builders.more import build_more
from genie.demo.relations import STOPS
from genie.demo.world import NEUTRAL, OBJECTS, Mention, Tweet, World, assemble, no_context_variant
from genie.errors import GenieError
from genie.eval.more import evaluate_more, more_label
from genie.grammar.text import AnyWriter, Slot, TextGrammar, Writer
from genie.labels import NO_RELATION, UNTYPED
from genie.records import Record, Relation
from genie.tasks.base import Parsed, Target, Task, register
from genie.tasks.entity_text import SEPARATOR

NONE_WORDS = "none"


def verbalize(label: str) -> str:
    """A relation as words: separators ("/", "_", ":") become spaces."""
    return NONE_WORDS if label == NO_RELATION else " ".join(re.split(r"[/_:\s]+", label)).strip()


@dataclass(frozen=True)
class MoreDemo:
    """One name in a neutral tweet and one given object, whose region alone tells the relation:
    each relation (and None) has its own look, and the object's name is drawn apart from it. The
    image also shows objects of other relations, so only the given object's region answers."""

    task: str = "more"
    relations: tuple[str, ...] = ("holds", "wears", "drives", "rides", "stands_by", "plays", "eats", "reads")
    keys: tuple = ((UNTYPED, None),)
    names_per_key: int = 60
    boxes: bool = False
    none_share: float = 0.3
    unlisted: int = 1  # objects of other relations in the image

    @property
    def name_keys(self) -> tuple:
        return self.keys

    def with_context(self) -> MoreDemo:
        raise no_context_variant(self.task)

    def tweet(self, world: World) -> Tweet:
        py, looks = world.py, world.vectors("more relations", len(self.relations) + 1)  # the last: None
        kind = len(self.relations) if py.random() < self.none_share else py.randrange(len(self.relations))
        head = Mention(py.choice(world.names[self.keys[0]]), self.keys[0])
        before, after = py.choice(NEUTRAL).split("{}")
        phrase = (before.split(), head, after.split() + [py.choice(STOPS)])
        tokens, _ = assemble(py, [phrase], world.filler(py.randint(5, 14)))
        others = py.sample([k for k in range(len(looks)) if k != kind], self.unlisted)
        relations = [(0, 0, self.relations[kind])] if kind < len(self.relations) else []
        return Tweet(tokens, [head], objects=[(py.choice(OBJECTS), looks[kind])], object_relations=relations,
                     unlisted=[np.array(looks[k]) for k in others])


class MORE(Task):
    name = "more"
    labels = MoreDemo.relations
    labels_from_data = True
    headline = "more"
    metric = staticmethod(evaluate_more)
    builder = staticmethod(build_more)
    grounded = False
    predicts_relations = True
    given_entities = 1  # the entity of the text
    given_objects = 1  # the object of the image
    demo = MoreDemo()

    @property
    def readings(self) -> dict[str, str]:
        """The target text of each label; two labels written alike would be one answer."""
        readings = {NONE_WORDS: NO_RELATION}
        for label in self.labels:
            if readings.setdefault(verbalize(label), label) != label:
                raise GenieError(f"more relations {readings[verbalize(label)]!r} and {label!r} are both written "
                                 f"{verbalize(label)!r}")
        return readings

    @property
    def label_words(self) -> tuple[str, ...]:
        return tuple(verbalize(label) for label in self.labels)

    def source_text(self, record: Record) -> str:
        self.check_given(record)
        head = record.entities[0]
        words = [*record.tokens[:head.start], "[h]", *record.tokens[head.start:head.end], "[/h]",
                 *record.tokens[head.end:]]
        return " ".join([*words, "[o]", record.objects[0].name])

    def linearize(self, record: Record, groundable: list[bool] | None = None) -> Target:
        self.check_given(record)
        return Target(text=verbalize(more_label(record)))

    def parse(self, text: str, record: Record) -> Parsed:
        label = self.readings.get(text.strip())
        entities = [replace(record.entities[0], boxes=[])]
        relations = [Relation(0, 0, label, tail_object=True)] if label not in (None, NO_RELATION) else []
        return Parsed(entities=entities, relations=relations, malformed=int(label is None))

    def text_grammar(self, record: Record, writer: Writer = AnyWriter()) -> TextGrammar:
        """Exactly one relation in words (or none): the pair is given, so no word of the tweet is written."""
        return TextGrammar([Slot("relation", self.readings)], SEPARATOR, min_units=1, max_units=1, writer=writer)


register(MORE())
