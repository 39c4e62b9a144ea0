"""A synthetic GMNER corpus in the real formats, so `make train` works with no download.

It is built to be learnable by a tiny model in CPU minutes, yet only through the images:
an entity is groundable exactly when a region carries its name's prototype vector, and the
other regions are prototypes of names absent from the tweet, so text alone cannot tell.
"""

from __future__ import annotations

import json
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np

from genie.errors import GenieError
from genie.io import atomic_write
from genie.records import Entity, Record, write_records

VERSION = 2  # bump when the generator changes, so stored demos are rebuilt
TYPES = ("PER", "LOC", "ORG", "OTHER")
NAMES_PER_TYPE = 20
PROTOTYPE_NORM = 3.0
FILLER = """the a to and of is in on at for with my this that it be so just not you we they
was are have has will can get got new good great day today night time now love like
watch see going back last first big best free live more one out up off all from about
here there what when who how why lol omg wow yes no our your his her their game show
news video photo vote win team city fans happy""".split()
HASHTAGS = ("#news", "#love", "#tbt", "#music", "#photo", "#travel", "#sports", "#live")
OBJECTS = ("person", "face", "shirt", "sign", "building", "car", "tree", "logo", "sky", "hand")
CONTEXTS = {  # type-hinting phrases; used only part of the time so names carry the signal
    "PER": ("with {}", "{} says", "thanks {}", "by {}", "meet {}"),
    "LOC": ("in {}", "from {}", "to {}", "near {}", "visit {}"),
    "ORG": ("at {}", "{} announced", "join {}", "via {}", "{} team"),
    "OTHER": ("watching {}", "playing {}", "the new {}", "{} tickets", "reading {}"),
}
NEUTRAL = ("{}", "{}", "{}", "and {}", "about {}", "{} !", "love {}", "#tbt {}")
ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea")
CODAS = ("", "", "", "n", "r", "s", "l", "m")


def build_demo(out_dir: str | Path, seed: int = 0, n_train: int = 2000, n_dev: int = 300,
               n_test: int = 300, feature_dim: int = 64, max_boxes: int = 10,
               noise_share: float = 0.0) -> dict:
    """Write `{train,dev,test}.jsonl`, `features/` and `demo.json`; reuse them when unchanged.

    Returns per-split counts of tweets, entities, groundable entities and boxes.
    """
    out_dir = Path(out_dir)
    params = {"version": VERSION, "seed": seed, "n_train": n_train, "n_dev": n_dev, "n_test": n_test,
              "feature_dim": feature_dim, "max_boxes": max_boxes, "noise_share": noise_share}
    if min(n_train, n_dev, n_test) < 0 or feature_dim < 1 or max_boxes < 6 or not 0 <= noise_share <= 1:
        raise GenieError(f"bad demo parameters {params}: counts >= 0, feature_dim >= 1, "
                         f"max_boxes >= 6 (3 entities x 2 boxes), 0 <= noise_share <= 1")
    stamp = out_dir / "demo.json"
    if stamp.is_file():
        try:
            stored = json.loads(stamp.read_text(encoding="utf-8"))
            if stored["params"] == params:
                return stored["counts"]
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable stamp just means: rebuild
        stamp.unlink()  # a half-finished rebuild must not look complete
    py_rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    names = _make_names(py_rng)
    flat = [name for group in names.values() for name in group]
    prototypes = dict(zip(flat, _unit_rows(np_rng, len(flat), feature_dim)))
    tmp_features = out_dir / ".features.tmp"
    shutil.rmtree(tmp_features, ignore_errors=True)
    tmp_features.mkdir(parents=True)
    gen = _Generator(py_rng, np_rng, names, prototypes, max_boxes, noise_share, tmp_features)
    counts, index = {}, 0
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        records = []
        for k in range(n):
            records.append(gen.record(f"demo-{split}-{k:06d}", f"demo_{index:06d}"))
            index += 1
        write_records(out_dir / f"{split}.jsonl", records)
        entities = [e for r in records for e in r.entities]
        counts[split] = {"tweets": n, "entities": len(entities),
                         "groundable": sum(e.groundable for e in entities),
                         "boxes": sum(len(e.boxes) for e in entities)}
    shutil.rmtree(out_dir / "features", ignore_errors=True)
    tmp_features.rename(out_dir / "features")
    with atomic_write(stamp) as handle:
        json.dump({"params": params, "counts": counts}, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return counts


def _make_names(rng: random.Random) -> dict[str, list[str]]:
    """Made-up names, no word shared between names, so every name has one type."""
    words: list[str] = []
    while len(words) < 2 * len(TYPES) * NAMES_PER_TYPE:
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                       for _ in range(rng.choice((2, 2, 3)))).capitalize()
        if word not in words and word.lower() not in FILLER:
            words.append(word)
    names = {}
    for t in TYPES:
        names[t] = []
        for _ in range(NAMES_PER_TYPE):
            names[t].append(words.pop() + (" " + words.pop() if rng.random() < 0.25 else ""))
    return names


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim))
    return PROTOTYPE_NORM * rows / np.linalg.norm(rows, axis=1, keepdims=True)


class _Generator:
    """Draws tweets and their images from the shared seeded generators, in a fixed order."""

    def __init__(self, py_rng: random.Random, np_rng: np.random.Generator, names: dict[str, list[str]],
                 prototypes: dict[str, np.ndarray], max_boxes: int, noise_share: float, features: Path):
        self.py, self.np, self.names, self.prototypes = py_rng, np_rng, names, prototypes
        self.max_boxes, self.noise_share, self.features = max_boxes, noise_share, features
        self.dim = len(next(iter(prototypes.values())))
        # Noise of norm ~0.4 x the prototype's, whatever the dimension: clearly matchable.
        self.noise_sd = 0.4 * PROTOTYPE_NORM / np.sqrt(self.dim)

    def record(self, record_id: str, image_id: str) -> Record:
        tokens, mentions = self._tweet()
        width, height = int(self.np.integers(400, 801)), int(self.np.integers(400, 801))
        related = self.py.random() >= self.noise_share
        in_tweet = list(dict.fromkeys(name for name, _, _ in mentions))
        shown = [name for name in in_tweet if related and self.py.random() < 0.5]
        regions, gold = [], {}
        for name in shown:
            gold[name] = []
            for _ in range(2 if self.py.random() < 0.1 else 1):
                box = self._box(width, height)
                regions.append((self._noisy(self.prototypes[name]), box))
                gold[name].append(self._jitter(box, width, height))
        absent = [name for name in self.prototypes if name not in in_tweet]
        for _ in range(self.py.randint(4, self.max_boxes) - len(regions)):
            if self.py.random() < 0.5:
                vector = self._noisy(self.prototypes[self.py.choice(absent)])
            else:
                vector = self.np.standard_normal(self.dim) * (PROTOTYPE_NORM / np.sqrt(self.dim))
            regions.append((vector, self._box(width, height)))
        self.py.shuffle(regions)
        self._write_npz(image_id, regions, width, height)
        entities = [Entity(start, end, name, type_, [list(b) for b in gold.get(name, [])])
                    for name, type_, (start, end) in mentions]
        return Record(record_id, "gmner", tokens, image_id, entities)

    def _tweet(self) -> tuple[list[str], list[tuple[str, str, tuple[int, int]]]]:
        """6-20 tokens: filler chunks with 1-3 entity phrases inserted between them."""
        picked: list[tuple[str, str]] = []
        for _ in range(self.py.choice((1, 1, 1, 2, 2, 3))):
            if picked and self.py.random() < 0.08:
                picked.append(self.py.choice(picked))  # a repeated name shares its boxes
            else:
                type_ = self.py.choice(TYPES)
                picked.append((self.py.choice(self.names[type_]), type_))
        phrases = []
        for name, type_ in picked:
            pattern = self.py.choice(CONTEXTS[type_] if self.py.random() < 0.4 else NEUTRAL)
            before, after = pattern.split("{}")
            phrases.append((before.split(), name, type_, after.split()))
        entity_tokens = sum(len(b) + len(n.split()) + len(a) for b, n, _, a in phrases)
        chunks: list = self._filler(max(self.py.randint(6, 19) - entity_tokens, 2))  # `&amp ;` may add 1
        for phrase in phrases:  # a tuple among the filler lists
            chunks.insert(self.py.randint(0, len(chunks)), phrase)
        tokens: list[str] = []
        mentions = []
        for chunk in chunks:
            if isinstance(chunk, tuple):
                before, name, type_, after = chunk
                tokens += before
                mentions.append((name, type_, (len(tokens), len(tokens) + len(name.split()))))
                tokens += name.split() + after
            else:
                tokens += chunk
        return tokens, mentions

    def _filler(self, n: int) -> list[list[str]]:
        """n filler tokens in unbreakable chunks (`RT @user :` first, `&amp ;`, a url last)."""
        chunks: list[list[str]] = []
        if self.py.random() < 0.25:
            chunks.append(["RT", f"@user{self.py.randint(1, 999)}", ":"])
        url = []
        if self.py.random() < 0.3:
            url = ["http://t.co/" + "".join(self.py.choices("abcdefXYZ0123456789", k=6))]
        while sum(map(len, chunks)) < n - len(url):
            r = self.py.random()
            if r < 0.06:
                chunks.append(["&amp", ";"])
            elif r < 0.14:
                chunks.append([self.py.choice(HASHTAGS)])
            else:
                chunks.append([self.py.choice(FILLER)])
        return chunks + [url] if url else chunks

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
