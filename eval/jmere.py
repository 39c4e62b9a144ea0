"""JMERE (REFERENCE section 4): exact (head span, head type, relation, tail span, tail type)
triples, micro P/R/F1, and the entity-level scores of the (span, type) entities the triples name."""

from __future__ import annotations

from collections import Counter

from eval.scores import pair_records, prf
from genie.labels import NO_RELATION
from genie.records import Record

Triple = tuple[tuple[int, int], str, str, tuple[int, int], str]


def triples(record: Record) -> Counter[Triple]:
    """The record's triples as a multiset: a duplicated prediction counts twice, matches once.
    A relation typed None is no relation."""
    ents = record.entities
    return Counter((ents[r.head].span, ents[r.head].type, r.type, ents[r.tail].span, ents[r.tail].type)
                   for r in record.relations if r.type != NO_RELATION)


def triple_entities(found: Counter[Triple]) -> set[tuple[tuple[int, int], str]]:
    return {(t[0], t[1]) for t in found} | {(t[3], t[4]) for t in found}


def evaluate_jmere(gold: list[Record], pred: list[Record]) -> dict:
    pairs, missing = pair_records(gold, pred)
    counts = Counter()
    for g, p in pairs:
        gold_triples, pred_triples = triples(g), triples(p) if p else Counter()
        counts["correct"] += sum((gold_triples & pred_triples).values())
        counts["predicted"] += sum(pred_triples.values())
        counts["gold"] += sum(gold_triples.values())
        gold_ents, pred_ents = triple_entities(gold_triples), triple_entities(pred_triples)
        counts["entity_correct"] += len(gold_ents & pred_ents)
        counts["entity_predicted"] += len(pred_ents)
        counts["entity_gold"] += len(gold_ents)
    return {"jmere": prf(counts["correct"], counts["predicted"], counts["gold"]),
            "entity": prf(counts["entity_correct"], counts["entity_predicted"], counts["entity_gold"]),
            "missing_predictions": missing}
