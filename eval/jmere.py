"""JMERE (REFERENCE section 4): exact (head span, head type, relation, tail span, tail type)
triples, micro P/R/F1, and the entity-level scores of the (span, type) entities the triples name.

`jmere` is directed: (head, relation, tail) must match gold as written. `jmere_undirected`
matches either direction, as EEGA's released code scores (it stores each entity pair once and
emits both directions), which is the score its published table reports. Unreadable generated
clauses (a record's `unreadable`) count as wrong predicted triples in both; the `entity` score
reads only the triples that were read."""

from __future__ import annotations

from collections import Counter
from typing import Hashable

from genie.eval.scores import pair_records, prf
from genie.labels import NO_RELATION
from genie.records import Record

Triple = tuple[tuple[int, int], str, str, tuple[int, int], str]


def triples(record: Record) -> Counter[Triple]:
    """The record's triples as a multiset: a duplicated prediction counts twice, matches once.
    A relation typed None is no relation."""
    ents = record.entities
    return Counter((ents[r.head].span, ents[r.head].type, r.type, ents[r.tail].span, ents[r.tail].type)
                   for r in record.relations if r.type != NO_RELATION)


def undirected(found: Counter[Triple]) -> Counter[Hashable]:
    """The triples with head and tail as an unordered pair (A r B and B r A become one key, twice)."""
    out: Counter[Hashable] = Counter()
    for (head, head_type, relation, tail, tail_type), n in found.items():
        out[(tuple(sorted([(head, head_type), (tail, tail_type)])), relation)] += n
    return out


def triple_entities(found: Counter[Triple]) -> set[tuple[tuple[int, int], str]]:
    return {(t[0], t[1]) for t in found} | {(t[3], t[4]) for t in found}


def evaluate_jmere(gold: list[Record], pred: list[Record]) -> dict:
    pairs, missing = pair_records(gold, pred)
    counts = Counter()
    for g, p in pairs:
        gold_triples, pred_triples = triples(g), triples(p) if p else Counter()
        unreadable = p.unreadable if p else 0
        for kind, gold_side, pred_side in (("", gold_triples, pred_triples),
                                           ("undirected_", undirected(gold_triples), undirected(pred_triples))):
            counts[f"{kind}correct"] += sum((gold_side & pred_side).values())
            counts[f"{kind}predicted"] += sum(pred_side.values()) + unreadable
            counts[f"{kind}gold"] += sum(gold_side.values())
        gold_ents, pred_ents = triple_entities(gold_triples), triple_entities(pred_triples)
        counts["entity_correct"] += len(gold_ents & pred_ents)
        counts["entity_predicted"] += len(pred_ents)
        counts["entity_gold"] += len(gold_ents)
    return {"jmere": prf(counts["correct"], counts["predicted"], counts["gold"]),
            "jmere_undirected": prf(counts["undirected_correct"], counts["undirected_predicted"],
                                    counts["undirected_gold"]),
            "entity": prf(counts["entity_correct"], counts["entity_predicted"], counts["entity_gold"]),
            "missing_predictions": missing}
