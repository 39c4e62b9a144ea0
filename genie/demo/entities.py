"""Entity demos (GMNER, MNER, FMNERG): tweets with 1-3 typed names, some shown in the image."""

from __future__ import annotations

from dataclasses import dataclass, replace

from genie.demo.world import (
    NEUTRAL,
    OBJECTS,
    Mention,
    Tweet,
    World,
    assemble,
    no_context_variant,
)

TypeKey = tuple[str, str | None]
AMBIGUOUS: TypeKey = ("?", None)  # the context variant's names, which have a type only per post


def pattern_parts(pattern: str, mention: Mention) -> tuple:
    before, after = pattern.split("{}")
    return (before.split(), mention, after.split())


@dataclass(frozen=True)
class EntityDemo:
    """`keys` are the (type, fine type) pairs names are drawn for; `contexts` hold type-hinting
    phrases per coarse type, used only part of the time so that names carry the signal;
    `boxes` keeps the gold boxes of names the image shows (False for MNER).

    The context variant (`with_context`): a share of the names are ambiguous, drawn with a random
    type in each post and with no type-hinting phrase, so the tweet cannot tell their type. Their
    post then carries an `llm` context that does ("Kraido is a singer", from `hints`), sometimes
    naming another name that is not in the tweet ("..., like Brelo"); other posts may carry an
    uninformative `caption`."""

    task: str
    keys: tuple[TypeKey, ...]
    contexts: dict[str, tuple[str, ...]]
    names_per_key: int = 20
    boxes: bool = True
    hints: dict[str, tuple[str, ...]] | None = None  # per coarse type, what a context calls such a name
    ambiguous_share: float = 0.0  # of the names picked: one of the ambiguous names

    @property
    def name_keys(self) -> tuple:
        return self.keys + ((AMBIGUOUS,) if self.ambiguous_share else ())

    def with_context(self) -> EntityDemo:
        if self.hints is None:
            raise no_context_variant(self.task)
        return replace(self, ambiguous_share=0.35)

    def tweet(self, world: World) -> Tweet:
        """6-20 tokens: filler chunks with 1-3 entity phrases inserted between them."""
        py = world.py
        picked: list[tuple[str, TypeKey]] = []
        hinted: dict[str, TypeKey] = {}
        for _ in range(py.choice((1, 1, 1, 2, 2, 3))):
            if picked and py.random() < 0.08:
                picked.append(py.choice(picked))  # a repeated name shares its boxes
            elif self.ambiguous_share and py.random() < self.ambiguous_share:
                name = py.choice(world.names[AMBIGUOUS])
                hinted.setdefault(name, py.choice(self.keys))  # one type per post
                picked.append((name, hinted[name]))
            else:
                key = py.choice(self.keys)
                picked.append((py.choice(world.names[key]), key))
        phrases = []
        for name, key in picked:
            hint = self.contexts[key[0]] if name not in hinted and py.random() < 0.4 else NEUTRAL
            phrases.append(pattern_parts(py.choice(hint), Mention(name, key)))
        entity_tokens = sum(len(b) + len(m.name.split()) + len(a) for b, m, a in phrases)
        filler = world.filler(max(py.randint(6, 19) - entity_tokens, 2))  # `&amp ;` may add 1
        tokens, mentions = assemble(py, phrases, filler)
        context = [("llm", self._hint(world, name, key, tokens)) for name, key in hinted.items()]
        if self.ambiguous_share and not hinted and py.random() < 0.4:
            context.append(("caption", f"a photo of a {py.choice(OBJECTS)} and a {py.choice(OBJECTS)}"))
        return Tweet(tokens, mentions, context=context)

    def _hint(self, world: World, name: str, key: TypeKey, tokens: list[str]) -> str:
        """"Kraido is a singer", a third of the time naming a name of that type the tweet lacks."""
        py = world.py
        text = f"{name} is {py.choice(self.hints[key[0]])}"
        if py.random() < 0.33:
            others = [n for n in world.names[key] if n.split()[0] not in tokens]
            text += f" , like {py.choice(others)}"
        return text


GMNER_CONTEXTS = {
    "PER": ("with {}", "{} says", "thanks {}", "by {}", "meet {}"),
    "LOC": ("in {}", "from {}", "to {}", "near {}", "visit {}"),
    "ORG": ("at {}", "{} announced", "join {}", "via {}", "{} team"),
    "OTHER": ("watching {}", "playing {}", "the new {}", "{} tickets", "reading {}"),
}
HINTS = {
    "PER": ("a singer", "an actor", "a football player", "a writer"),
    "LOC": ("a town", "a river", "a country", "a mountain"),
    "ORG": ("a company", "a band", "a football club", "a charity"),
    "OTHER": ("a film", "a video game", "a song", "a tv show"),
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
