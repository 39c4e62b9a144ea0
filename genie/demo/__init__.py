"""Synthetic corpora in the real formats, one per task, so `make train` works with no download.

Each is built to be learnable by a tiny model in CPU minutes. For grounded tasks only the
image tells which entities are groundable: an entity is in the image exactly when a region
carries its name's prototype vector, and the other regions are prototypes of names absent from
the tweet. A task names its corpus with a spec (`EntityDemo`, `RelationDemo`) that composes
tweets; `build_demo` does the rest: splits, images, records and a stamp.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Protocol

from filelock import FileLock

from genie.demo.entities import EntityDemo
from genie.demo.relations import RelationDemo
from genie.demo.world import Tweet, World
from genie.errors import GenieError
from genie.io import atomic_folder, atomic_write
from genie.records import Context, Entity, GivenObject, Record, Relation, write_records
from genie.regions.manifest import FORMAT, MANIFEST
from genie.regions.manifest import VERSION as EXTRACTION_VERSION

VERSION = 5  # bump when a generator changes, so stored demos are rebuilt


class DemoSpec(Protocol):
    task: str
    keys: tuple
    names_per_key: int
    boxes: bool

    @property
    def name_keys(self) -> tuple: ...  # the keys names are made for (`keys`, and a variant's own)

    def with_context(self) -> DemoSpec: ...  # the context variant (data.demo_context), or GenieError

    def tweet(self, world: World) -> Tweet: ...


def build_demo(out_dir: str | Path, spec: DemoSpec, seed: int = 0, n_train: int = 2000, n_dev: int = 300,
               n_test: int = 300, feature_dim: int = 64, max_boxes: int = 10, noise_share: float = 0.0) -> dict:
    """Write `{train,dev,test}.jsonl`, `features/` and `demo.json`; reuse them when unchanged.

    Returns per-split counts of tweets, entities, groundable entities, boxes and relations.
    """
    out_dir = Path(out_dir)
    # The spec's fields (types, names per type, shares, ...) are in the stamp; code changes bump VERSION.
    spec_hash = hashlib.sha256(repr(spec).encode()).hexdigest()[:16]
    params = {"version": VERSION, "task": spec.task, "spec": spec_hash, "seed": seed, "n_train": n_train,
              "n_dev": n_dev, "n_test": n_test, "feature_dim": feature_dim, "max_boxes": max_boxes,
              "noise_share": noise_share}
    if min(n_train, n_dev, n_test) < 0 or feature_dim < 1 or max_boxes < 6 or not 0 <= noise_share <= 1:
        raise GenieError(f"bad demo parameters {params}: counts >= 0, feature_dim >= 1, "
                         f"max_boxes >= 6 (3 entities x 2 boxes), 0 <= noise_share <= 1")
    with exclusive(out_dir):  # two runs sharing a demo folder: one builds it, the other then reuses it
        stamp = out_dir / "demo.json"
        if stamp.is_file():
            try:
                stored = json.loads(stamp.read_text(encoding="utf-8"))
                if stored["params"] == params:
                    return stored["counts"]
            except (ValueError, KeyError, TypeError):
                pass  # an unreadable stamp just means: rebuild
            stamp.unlink()  # a half-finished rebuild must not look complete
        with atomic_folder(out_dir / "features") as tmp_features:
            world = World(seed, list(spec.name_keys), spec.names_per_key, feature_dim, max_boxes, noise_share,
                          tmp_features)
            _write_origin(tmp_features, feature_dim, max_boxes, seed)
            counts, index = {}, 0
            for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
                records = []
                for k in range(n):
                    records.append(_record(spec, world, f"demo-{split}-{k:06d}", f"demo_{index:06d}"))
                    index += 1
                write_records(out_dir / f"{split}.jsonl", records)
                entities = [e for r in records for e in r.entities]
                counts[split] = {"tweets": n, "entities": len(entities),
                                 "groundable": sum(e.groundable for e in entities),
                                 "boxes": sum(len(e.boxes) for e in entities),
                                 "relations": sum(len(r.relations) for r in records)}
        with atomic_write(stamp) as handle:
            json.dump({"params": params, "counts": counts}, handle, indent=2, sort_keys=True)
            handle.write("\n")
        return counts


def _write_origin(folder: Path, feature_dim: int, max_boxes: int, seed: int) -> None:
    """The demo regions' `extraction.json`, so a demo checkpoint says where its regions came from."""
    origin = {"family": "demo", "model": "genie.demo synthetic regions", "max_regions": max_boxes, "seed": seed}
    with atomic_write(folder / MANIFEST) as handle:
        json.dump({"format": FORMAT, "version": EXTRACTION_VERSION, "detector": origin, "dim": feature_dim}, handle,
                  indent=2)


@contextlib.contextmanager
def exclusive(folder: Path):
    """Hold the folder's lock file (an OS file lock, also on Windows) while the block runs."""
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".lock"):
        yield


def _record(spec: DemoSpec, world: World, record_id: str, image_id: str) -> Record:
    tweet = spec.tweet(world)
    gold, object_boxes = world.image(image_id, list(dict.fromkeys(m.name for m in tweet.mentions)),
                                     [vector for _, vector in tweet.objects], tweet.unlisted)
    entities = [Entity(m.span[0], m.span[1], m.name, m.key[0],
                       [list(b) for b in gold.get(m.name, [])] if spec.boxes else [], fine_type=m.key[1])
                for m in tweet.mentions]
    relations = [Relation(head, tail, label) for head, tail, label in tweet.relations]
    relations += [Relation(head, k, label, tail_object=True) for head, k, label in tweet.object_relations]
    objects = [GivenObject(name, tuple(float(v) for v in box)) for (name, _), box in zip(tweet.objects, object_boxes)]
    return Record(record_id, spec.task, tweet.tokens, image_id, entities, relations,
                  context=[Context(source, text) for source, text in tweet.context], objects=objects)


__all__ = ["DemoSpec", "EntityDemo", "RelationDemo", "build_demo"]
