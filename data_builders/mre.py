"""MNRE v2 -> MRE records: one record per line, the head and tail as entities 0 and 1.

MNRE has no entity-type fields: the types come from the relation path (`/per/org/member_of`:
head per, tail org); a pair in no relation (`None`) has `unknown` types and no relation.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from genie.data_builders import BuildResult
from genie.data_builders.mnre import mnre_file, read_mnre
from genie.labels import NO_RELATION, UNTYPED, split_path
from genie.records import Entity, Record, Relation


def build_mre(source: Path, split: str) -> BuildResult:
    lines = read_mnre(mnre_file(source, split))
    records = []
    for line in lines:
        head_type, tail_type = (UNTYPED, UNTYPED) if line.relation == NO_RELATION else split_path(line.relation)[:2]
        entities = [Entity(s, e, " ".join(line.tokens[s:e]), kind)
                    for (s, e), kind in ((line.head, head_type), (line.tail, tail_type))]
        relations = [] if line.relation == NO_RELATION else [Relation(0, 1, line.relation)]
        records.append(Record(f"{split}-{line.line}", "mre", line.tokens, line.image_id, entities, relations))
    labels = Counter(line.relation for line in lines)
    counts = {"instances": len(lines), "relations": len(lines) - labels[NO_RELATION], "none": labels[NO_RELATION],
              "labels": len(labels), "names_not_matching_tokens": sum(not line.names_match for line in lines)}
    return BuildResult(records=records, counts=counts)
