"""What every demo corpus is made of: made-up names, filler tweets, and VinVL-layout images.

An image shows some of the tweet's names: a region carries the name's prototype vector (plus
noise) under the gold box; the other regions are prototypes of names absent from the tweet or
noise, so only the regions can tell which names are in the image.
"""

from __future__ import annotations

import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genie.errors import GenieError

PROTOTYPE_NORM = 3.0
FILLER = """the a to and of is in on at for with my this that it be so just not you we they
was are have has will can get got new good great day today night time now love like
watch see going back last first big best free live more one out up off all from about
here there what when who how why lol omg wow yes no our your his her their game show
news video photo vote win team city fans happy""".split()
HASHTAGS = ("#news", "#love", "#tbt", "#music", "#photo", "#travel", "#sports", "#live")
OBJECTS = ("person", "face", "shirt", "sign", "building", "car", "tree", "logo", "sky", "hand")
NEUTRAL = ("{}", "{}", "{}", "and {}", "about {}", "{} !", "love {}", "#tbt {}")
ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea")
CODAS = ("", "", "", "n", "r", "s", "l", "m")


def no_context_variant(task: str) -> GenieError:
    return GenieError(f"the {task} demo has no context variant (data.demo_context=true): the mner and gmner demos "
                      "have one")


@dataclass
class Mention:
    """A name placed in a tweet: its type key (coarse, fine or None) and token span."""

    name: str
    key: tuple[str, str | None]
    span: tuple[int, int] = (0, 0)


@dataclass
class Tweet:
    """A composed tweet: tokens, the mentions to annotate, and relations between them."""

    tokens: list[str]
    mentions: list[Mention]
    relations: list[tuple[int, int, str]] = field(default_factory=list)  # (head, tail, label)
    context: list[tuple[str, str]] = field(default_factory=list)  # (source, text): what the tweet lacks
    # Objects given as input: (name, vector of its region), each shown in the image under its box.
    objects: list[tuple[str, np.ndarray]] = field(default_factory=list)
    object_relations: list[tuple[int, int, str]] = field(default_factory=list)  # (head entity, object, label)
    unlisted: list[np.ndarray] = field(default_factory=list)  # vectors of objects the image shows, not given


def make_names(rng: random.Random, keys: list[tuple[str, str | None]], per_key: int) -> dict:
    """`per_key` made-up names for each type key; no word is shared, so every name has one type."""
    words: list[str] = []
    while len(words) < 2 * len(keys) * per_key:
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(rng.choice((2, 2, 3)))).capitalize()
        if word not in words and word.lower() not in FILLER:
            words.append(word)
    names = {}
    for key in keys:
        names[key] = []
        for _ in range(per_key):
            names[key].append(words.pop() + (" " + words.pop() if rng.random() < 0.25 else ""))
    return names


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim))
    return PROTOTYPE_NORM * rows / np.linalg.norm(rows, axis=1, keepdims=True)


def assemble(py: random.Random, phrases: list[tuple], filler: list[list[str]]) -> tuple[list[str], list[Mention]]:
    """Insert each phrase (a tuple of parts: word lists and Mentions) at a random place among the
    filler chunks, which are never split; returns the tokens and the mentions with their spans."""
    chunks: list = list(filler)
    for phrase in phrases:  # a tuple among the filler lists
        chunks.insert(py.randint(0, len(chunks)), phrase)
    tokens: list[str] = []
    placed: list[Mention] = []
    for chunk in chunks:
        if isinstance(chunk, tuple):
            for part in chunk:
                if isinstance(part, Mention):
                    part.span = (len(tokens), len(tokens) + len(part.name.split()))
                    tokens += part.name.split()
                    placed.append(part)
                else:
                    tokens += part
        else:
            tokens += chunk
    return tokens, placed


class World:
    """The seeded generators, the names and their prototypes, shared by every record of a demo."""

    def __init__(self, seed: int, keys: list[tuple[str, str | None]], names_per_key: int, feature_dim: int,
                 max_boxes: int, noise_share: float, features: Path):
        self.py, self.np = random.Random(seed), np.random.default_rng(seed)
        self.names = make_names(self.py, keys, names_per_key)
        flat = [name for group in self.names.values() for name in group]
        self.prototypes = dict(zip(flat, unit_rows(self.np, len(flat), feature_dim)))
        self.dim, self.max_boxes, self.noise_share, self.features = feature_dim, max_boxes, noise_share, features
        # Noise of norm ~0.4 x the prototype's, whatever the dimension: clearly matchable.
        self.noise_sd = 0.4 * PROTOTYPE_NORM / np.sqrt(feature_dim)
        self._vectors: dict[str, np.ndarray] = {}

    def vectors(self, key: str, n: int) -> np.ndarray:
        """`n` prototype vectors a spec names `key` (a relation's look, ...), drawn once per world."""
        if key not in self._vectors:
            self._vectors[key] = unit_rows(self.np, n, self.dim)
        return self._vectors[key]

    def filler(self, n: int) -> list[list[str]]:
        """n filler tokens in unbreakable chunks (`RT @user :` first, `&amp ;`, a url last)."""
        py = self.py
        chunks: list[list[str]] = []
        if py.random() < 0.25:
            chunks.append(["RT", f"@user{py.randint(1, 999)}", ":"])
        url = []
        if py.random() < 0.3:
            url = ["http://t.co/" + "".join(py.choices("abcdefXYZ0123456789", k=6))]
        while sum(map(len, chunks)) < n - len(url):
            r = py.random()
            if r < 0.06:
                chunks.append(["&amp", ";"])
            elif r < 0.14:
                chunks.append([py.choice(HASHTAGS)])
            else:
                chunks.append([py.choice(FILLER)])
        return chunks + [url] if url else chunks

    def image(self, image_id: str, in_tweet: list[str], objects: list[np.ndarray] = (),
              unlisted: list[np.ndarray] = ()) -> tuple[dict, list]:
        """Write the image's regions; returns the gold boxes of the names it shows, and the box of
        each given object (a region with that vector, plus noise; `unlisted` ones get a region too)."""
        width, height = int(self.np.integers(400, 801)), int(self.np.integers(400, 801))
        related = self.py.random() >= self.noise_share
        shown = [name for name in in_tweet if related and self.py.random() < 0.5]
        regions, gold = [], {}
        for name in shown:
            gold[name] = []
            for _ in range(2 if self.py.random() < 0.1 else 1):
                box = self._box(width, height)
                regions.append((self._noisy(self.prototypes[name]), box))
                gold[name].append(self._jitter(box, width, height))
        object_boxes = []
        for k, vector in enumerate([*objects, *unlisted]):
            box = self._box(width, height)
            regions.append((self._noisy(vector), box))
            if k < len(objects):
                object_boxes.append(self._jitter(box, width, height))
        absent = [name for name in self.prototypes if name not in in_tweet]
        for _ in range(self.py.randint(4, self.max_boxes) - len(regions)):
            if self.py.random() < 0.5:
                vector = self._noisy(self.prototypes[self.py.choice(absent)])
            else:
                vector = self.np.standard_normal(self.dim) * (PROTOTYPE_NORM / np.sqrt(self.dim))
            regions.append((vector, self._box(width, height)))
        self.py.shuffle(regions)
        self._write_npz(image_id, regions, width, height)
        return gold, object_boxes

    def _noisy(self, prototype: np.ndarray) -> np.ndarray:
        return prototype + self.np.normal(0.0, self.noise_sd, self.dim)

    def _box(self, width: int, height: int) -> list[float]:
        w, h = self.np.uniform(60, 300), self.np.uniform(60, 300)
        x, y = self.np.uniform(0, width - w), self.np.uniform(0, height - h)
        return [round(float(v), 1) for v in (x, y, x + w, y + h)]

    def _jitter(self, box: list[float], width: int, height: int) -> list[int]:
        """Integer pixels, each side moved <= 3 px: IoU with the region stays above 0.8."""
        x1, y1, x2, y2 = (round(v) + int(self.np.integers(-3, 4)) for v in box)
        return [max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)]

    def _write_npz(self, image_id: str, regions: list, width: int, height: int) -> None:
        """VinVL layout, written with a fixed zip timestamp so equal seeds give equal bytes."""
        arrays = {
            "box_features": np.array([v for v, _ in regions], np.float32),
            "bounding_boxes": np.array([b for _, b in regions], np.float32),
            "image_h": np.array(height), "image_w": np.array(width), "num_boxes": np.array(len(regions)),
            "scores": self.np.uniform(0.2, 1.0, len(regions)).astype(np.float32),
            "objects": np.array([self.py.choice(OBJECTS) for _ in regions]),
        }
        with zipfile.ZipFile(self.features / f"{image_id}.jpg.npz", "w") as archive:
            for key, value in arrays.items():
                with archive.open(zipfile.ZipInfo(f"{key}.npy", (1980, 1, 1, 0, 0, 0)), "w") as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)
