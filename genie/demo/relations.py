"""Relation demos: MRE (one marked pair, its relation or None) and JMERE (every triple).

A relation is stated by a trigger phrase around the two names ("{h} joins {t}", some with the
tail first); the types of the path come from the names, each of which has one type. None pairs
are joined by a neutral word or stand apart. Some tweets carry an extra name in no relation, so
a model cannot simply pair up every name it sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genie.demo.world import (
    NEUTRAL,
    Mention,
    Tweet,
    World,
    assemble,
    no_context_variant,
)
from genie.labels import MNRE_RELATIONS, RELATION_TYPES, split_path

TRIGGERS = {
    "/loc/loc/contain": ("{t} , {h}", "{h} includes {t}"),
    "/misc/loc/held_on": ("{h} held in {t}", "{h} comes to {t}"),
    "/misc/misc/part_of": ("{h} part of {t}", "{h} from the {t} series"),
    "/org/loc/locate_at": ("{h} based in {t}", "{h} office in {t}"),
    "/org/org/alternate_names": ("{h} aka {t}", "{h} also called {t}"),
    "/org/org/subsidiary": ("{h} a unit of {t}", "{t} owns {h}"),
    "/per/loc/place_of_birth": ("{h} born in {t}", "{t} native {h}"),
    "/per/loc/place_of_residence": ("{h} lives in {t}", "{h} moved to {t}"),
    "/per/misc/awarded": ("{h} wins {t}", "{h} receives the {t}"),
    "/per/misc/nationality": ("{t} star {h}", "{h} , a proud {t}"),
    "/per/misc/present_in": ("{h} performs at {t}", "{h} live at {t}"),
    "/per/misc/race": ("{h} , a {t} woman", "{h} , a {t} man"),
    "/per/misc/religion": ("{h} , a devout {t}", "{h} prays as {t}"),
    "/per/org/member_of": ("{h} joins {t}", "{h} plays for {t}"),
    "/per/per/alternate_names": ("{h} aka {t}", "{h} also called {t}"),
    "/per/per/alumi": ("{h} studied with {t}", "{h} classmate {t}"),
    "/per/per/charges": ("{h} sues {t}", "{h} accuses {t}"),
    "/per/per/couple": ("{h} married {t}", "{h} dating {t}"),
    "/per/per/neighbor": ("{h} lives next to {t}", "{h} next door to {t}"),
    "/per/per/parent": ("{h} mother of {t}", "{t} son of {h}"),
    "/per/per/peer": ("{h} with teammate {t}", "{h} and co-star {t}"),
    "/per/per/siblings": ("{h} sister of {t}", "{h} brother of {t}"),
}
UNRELATED = ("{h} and {t}", "{h} or {t}")
# Each phrase ends a statement, as tweets separate them: two facts never run into one another
# ("A married B C includes D" would leave B C one name or two). Not ",": triggers use it.
STOPS = (".", "!", ";", "|", "...")
assert set(TRIGGERS) == set(MNRE_RELATIONS)


def trigger_parts(world: World, pattern: str, head: Mention, tail: Mention) -> tuple:
    """"{h} joins {t}" -> (words, head, words, tail, words + a stop), in the pattern's order."""
    parts: list = []
    for piece in re.split(r"(\{[ht]\})", pattern):
        if piece in ("{h}", "{t}"):
            parts.append(head if piece == "{h}" else tail)
        else:
            parts.append(piece.split())
    return (*parts, [world.py.choice(STOPS)])


def neutral_parts(world: World, mention: Mention) -> tuple:
    before, after = world.py.choice(NEUTRAL).split("{}")
    return (before.split(), mention, after.split() + [world.py.choice(STOPS)])


@dataclass(frozen=True)
class RelationDemo:
    """`joint`: JMERE (1-2 facts, every triple annotated); otherwise MRE (one marked pair)."""

    task: str
    joint: bool
    keys: tuple = tuple((t, None) for t in RELATION_TYPES)
    names_per_key: int = 20
    boxes: bool = False
    none_share: float = 0.35  # MRE pairs in no relation
    stray_share: float = 0.3  # tweets with an extra name in no relation

    @property
    def name_keys(self) -> tuple:
        return self.keys

    def with_context(self) -> RelationDemo:
        raise no_context_variant(self.task)

    def tweet(self, world: World) -> Tweet:
        py = world.py
        used: set[str] = set()

        def name(kind: str) -> Mention:
            choice = py.choice([n for n in world.names[(kind, None)] if n not in used])
            used.add(choice)
            return Mention(choice, (kind, None))

        phrases, pairs = [], []
        for _ in range(py.choice((1, 1, 1, 2, 2)) if self.joint else 1):  # MNRE: 1.3 triples a sentence
            if self.joint or py.random() >= self.none_share:
                path = py.choice(MNRE_RELATIONS)
                head_type, tail_type, relation = split_path(path)
                head, tail = name(head_type), name(tail_type)
                phrases.append(trigger_parts(world, py.choice(TRIGGERS[path]), head, tail))
                pairs.append((head, tail, relation if self.joint else path))
            else:  # an MRE pair in no relation: joined by a neutral word, or apart
                head, tail = name(py.choice(RELATION_TYPES)), name(py.choice(RELATION_TYPES))
                if py.random() < 0.5:
                    phrases.append(trigger_parts(world, py.choice(UNRELATED), head, tail))
                else:
                    phrases += [neutral_parts(world, head), neutral_parts(world, tail)]
                pairs.append((head, tail, None))
        if py.random() < self.stray_share:
            phrases.append(neutral_parts(world, name(py.choice(RELATION_TYPES))))
        entity_tokens = sum(len(p) if isinstance(p, list) else len(p.name.split()) for ph in phrases for p in ph)
        tokens, _ = assemble(py, phrases, world.filler(max(py.randint(8, 22) - entity_tokens, 2)))
        # Names are never reused within a tweet, so pair k holds entities 2k and 2k + 1.
        mentions = [m for head, tail, _ in pairs for m in (head, tail)]
        relations = [(2 * k, 2 * k + 1, label) for k, (_, _, label) in enumerate(pairs) if label]
        return Tweet(tokens, mentions, relations)
