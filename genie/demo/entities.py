"""Entity demos (GMNER, MNER, FMNERG): tweets with 1-3 typed names, some shown in the image."""

from __future__ import annotations

from dataclasses import dataclass

from genie.demo.world import NEUTRAL, Mention, Tweet, World, assemble

TypeKey = tuple[str, str | None]


def pattern_parts(pattern: str, mention: Mention) -> tuple:
    before, after = pattern.split("{}")
    return (before.split(), mention, after.split())


@dataclass(frozen=True)
class EntityDemo:
    """`keys` are the (type, fine type) pairs names are drawn for; `contexts` hold type-hinting
    phrases per coarse type, used only part of the time so that names carry the signal;
    `boxes` keeps the gold boxes of names the image shows (False for MNER)."""

    task: str
    keys: tuple[TypeKey, ...]
    contexts: dict[str, tuple[str, ...]]
    names_per_key: int = 20
    boxes: bool = True

    def tweet(self, world: World) -> Tweet:
        """6-20 tokens: filler chunks with 1-3 entity phrases inserted between them."""
        py = world.py
        picked: list[tuple[str, TypeKey]] = []
        for _ in range(py.choice((1, 1, 1, 2, 2, 3))):
            if picked and py.random() < 0.08:
                picked.append(py.choice(picked))  # a repeated name shares its boxes
            else:
                key = py.choice(self.keys)
                picked.append((py.choice(world.names[key]), key))
        phrases = []
        for name, key in picked:
            pattern = py.choice(self.contexts[key[0]] if py.random() < 0.4 else NEUTRAL)
            phrases.append(pattern_parts(pattern, Mention(name, key)))
        entity_tokens = sum(len(b) + len(m.name.split()) + len(a) for b, m, a in phrases)
        filler = world.filler(max(py.randint(6, 19) - entity_tokens, 2))  # `&amp ;` may add 1
        tokens, mentions = assemble(py, phrases, filler)
        return Tweet(tokens, mentions)


GMNER_CONTEXTS = {
    "PER": ("with {}", "{} says", "thanks {}", "by {}", "meet {}"),
    "LOC": ("in {}", "from {}", "to {}", "near {}", "visit {}"),
    "ORG": ("at {}", "{} announced", "join {}", "via {}", "{} team"),
    "OTHER": ("watching {}", "playing {}", "the new {}", "{} tickets", "reading {}"),
}
FMNERG_CONTEXTS = {
    "person": GMNER_CONTEXTS["PER"],
    "location": GMNER_CONTEXTS["LOC"],
    "organization": GMNER_CONTEXTS["ORG"],
    "building": ("inside {}", "outside {}", "at the {}", "{} tonight"),
    "other": ("about {}", "the {}", "{} stuff"),
    "art": ("reading {}", "watching {}", "{} review"),
    "event": ("at {}", "{} 2016", "{} starts"),
    "product": ("the new {}", "buy {}", "{} launch"),
}
