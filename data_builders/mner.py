"""Twitter-2015 / Twitter-2017 MNER builder (the UMT release: `{train,valid,test}.txt`).

Orphan `I-` tags (Twitter-2015 has 186/53/135) start an entity and are counted, as conlleval
counts them: `entities`. The dataset papers' tables count only entities that start with a `B-`
tag: `b_tag_entities`, reported beside it (Twitter-2015 train: 6352 and 6166)."""

from __future__ import annotations

from pathlib import Path

from genie.data_builders import BuildResult
from genie.data_builders.conll import bio_to_spans, read_conll
from genie.data_builders.files import check_split
from genie.records import Entity, Record

FILES = {"train": "train", "dev": "valid", "test": "test"}


def build_mner(source: Path, split: str) -> BuildResult:
    """Records of one split of a release folder such as `data/twitter2015`."""
    check_split(split, source)
    counts = dict.fromkeys(("tweets", "entities", "b_tag_entities", "orphan_i_tags"), 0)
    records = []
    for tweet in read_conll(Path(source) / f"{FILES[split]}.txt"):
        spans, orphans = bio_to_spans(tweet.tags[0])
        entities = [Entity(start, end, " ".join(tweet.tokens[start:end]), kind, []) for start, end, kind in spans]
        records.append(Record(id=f"{split}-{tweet.image_id}", task="mner", tokens=tweet.tokens,
                              image_id=tweet.image_id, entities=entities))
        counts["tweets"] += 1
        counts["entities"] += len(entities)
        counts["b_tag_entities"] += len(entities) - orphans  # every other entity starts at its B- tag
        counts["orphan_i_tags"] += orphans
    return BuildResult(records=records, counts=counts)
