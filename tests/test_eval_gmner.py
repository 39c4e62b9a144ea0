"""GMNER / MNER / EEG metrics on hand-built records with hand-computed expected scores."""

from __future__ import annotations

import pytest

from genie.errors import GenieError
from genie.eval.gmner import evaluate_gmner
from genie.eval.scores import prf
from genie.records import Entity, Record

BOX = [0.0, 0.0, 10.0, 10.0]
FAR = [50.0, 50.0, 60.0, 60.0]


def ent(start: int, end: int, type_: str = "PER", boxes: list[list[float]] | None = None) -> Entity:
    return Entity(start=start, end=end, text="", type=type_, boxes=boxes or [])


def rec(rid: str, *entities: Entity) -> Record:
    return Record(id=rid, task="gmner", tokens=["w"] * 10, image_id=f"{rid}.jpg",
                  entities=list(entities))


def counts(score) -> tuple[int, int, int]:
    return score["correct"], score["predicted"], score["gold"]


GOLD = [
    rec("a", ent(0, 2, "PER", [BOX]), ent(3, 4, "LOC")),
    rec("b", ent(1, 3, "ORG", [FAR, BOX])),
]
# A prediction carries at most one box: the second gold box of "b" is as good as any.
PERFECT = [GOLD[0], rec("b", ent(1, 3, "ORG", [BOX]))]


def test_prf_percent_and_zero_denominators():
    assert prf(1, 2, 4) == pytest.approx(
        {"precision": 50.0, "recall": 25.0, "f1": 100 / 3, "correct": 1, "predicted": 2, "gold": 4})
    assert prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "correct": 0, "predicted": 0, "gold": 0}


def test_perfect_prediction_scores_100():
    out = evaluate_gmner(GOLD, PERFECT)
    for task in ("gmner", "mner", "eeg"):
        assert out[task]["precision"] == out[task]["recall"] == out[task]["f1"] == pytest.approx(100.0)
        assert counts(out[task]) == (3, 3, 3)
    assert out["missing_predictions"] == 0


def test_empty_prediction_counts_nothing_predicted_and_keeps_gold():
    out = evaluate_gmner(GOLD, [rec("a"), rec("b")])
    for task in ("gmner", "mner", "eeg"):
        assert counts(out[task]) == (0, 0, 3)
        assert (out[task]["precision"], out[task]["recall"], out[task]["f1"]) == (0.0, 0.0, 0.0)
    assert out["missing_predictions"] == 0


def test_duplicated_prediction_is_one_hit_and_one_false_positive():
    gold = [rec("a", ent(0, 2, "PER", [BOX]))]
    out = evaluate_gmner(gold, [rec("a", ent(0, 2, "PER", [BOX]), ent(0, 2, "PER", [BOX]))])
    for task in ("gmner", "mner", "eeg"):
        assert counts(out[task]) == (1, 2, 1)
        assert out[task]["precision"] == pytest.approx(50.0)
        assert out[task]["recall"] == pytest.approx(100.0)
        assert out[task]["f1"] == pytest.approx(200 / 3)


@pytest.mark.parametrize("order", [1, -1])
def test_entity_predicted_twice_with_good_and_bad_box(order):
    gold = [rec("a", ent(0, 2, "PER", [BOX]))]
    preds = [ent(0, 2, "PER", [FAR]), ent(0, 2, "PER", [BOX])][::order]
    out = evaluate_gmner(gold, [rec("a", *preds)])
    assert counts(out["gmner"]) == (1, 2, 1)
    assert counts(out["eeg"]) == (1, 2, 1)
    assert counts(out["mner"]) == (1, 2, 1)


@pytest.mark.parametrize(
    "pred_box, hit",
    [
        ([0, 0, 5, 10], True),    # nested: 50 / 100 = 0.5 exactly
        ([0, 0, 5.1, 10], True),  # 51 / 100
        ([0, 0, 4.9, 10], False),  # 49 / 100
        ([5, 0, 15, 10], False),  # half overlap: 50 / 150
    ],
)
def test_iou_threshold_is_inclusive_at_one_half(pred_box, hit):
    gold = [rec("a", ent(0, 2, "PER", [BOX]))]
    out = evaluate_gmner(gold, [rec("a", ent(0, 2, "PER", [pred_box]))])
    assert out["gmner"]["correct"] == out["eeg"]["correct"] == int(hit)
    assert out["mner"]["correct"] == 1


def test_iou_exactly_one_half_for_crossing_boxes():
    # [0,0,3,1] vs [1,0,4,1]: intersection 2, union 3 + 3 - 2 = 4.
    gold = [rec("a", ent(0, 1, "PER", [[0, 0, 3, 1]]))]
    out = evaluate_gmner(gold, [rec("a", ent(0, 1, "PER", [[1, 0, 4, 1]]))])
    assert out["gmner"]["correct"] == 1


def test_any_gold_box_of_the_entity_may_match():
    # Gold "b" has boxes [FAR, BOX]; a prediction on the second one is correct.
    out = evaluate_gmner(GOLD[1:], [rec("b", ent(1, 3, "ORG", [BOX]))])
    assert counts(out["gmner"]) == (1, 1, 1)


def test_wrong_type_right_box_counts_only_for_eeg():
    gold = [rec("a", ent(0, 2, "PER", [BOX]))]
    out = evaluate_gmner(gold, [rec("a", ent(0, 2, "LOC", [BOX]))])
    assert counts(out["eeg"]) == (1, 1, 1)
    assert counts(out["gmner"]) == (0, 1, 1)
    assert counts(out["mner"]) == (0, 1, 1)


@pytest.mark.parametrize(
    "gold_boxes, pred_boxes",
    [([BOX], []), ([], [BOX])],
    ids=["groundable-gold-no-box", "ungroundable-gold-with-box"],
)
def test_groundable_mismatch_is_wrong_for_gmner_and_eeg(gold_boxes, pred_boxes):
    gold, pred = rec("a", ent(0, 2, "PER", gold_boxes)), rec("a", ent(0, 2, "PER", pred_boxes))
    out = evaluate_gmner([gold], [pred])
    assert counts(out["gmner"]) == (0, 1, 1)
    assert counts(out["eeg"]) == (0, 1, 1)
    assert counts(out["mner"]) == (1, 1, 1)


def test_both_ungroundable_is_correct():
    out = evaluate_gmner([rec("a", ent(3, 4, "LOC"))], [rec("a", ent(3, 4, "LOC"))])
    assert counts(out["gmner"]) == (1, 1, 1)


@pytest.mark.parametrize("order", [1, -1])
def test_matching_is_maximal_whatever_the_prediction_order(order):
    # EEG ignores type: both gold entities share a span. Box A overlaps both gold boxes;
    # box C = [0,0,10,5.5] overlaps only g1 (55/100 vs 55/120). First-fit in this order would
    # give A to g1 and leave C unmatched; a maximum matching finds both.
    g1, g2 = ent(0, 2, "PER", [BOX]), ent(0, 2, "LOC", [[0, 0, 10, 12]])
    preds = [ent(0, 2, "ORG", [BOX]), ent(0, 2, "ORG", [[0, 0, 10, 5.5]])][::order]
    out = evaluate_gmner([rec("a", g1, g2)], [rec("a", *preds)])
    assert counts(out["eeg"]) == (2, 2, 2)
    assert counts(out["gmner"]) == (0, 2, 2)


def test_predicted_record_not_in_gold_raises():
    with pytest.raises(GenieError, match="'zzz'"):
        evaluate_gmner(GOLD, [rec("a"), rec("zzz", ent(0, 1))])


def test_duplicated_predicted_record_id_raises():
    with pytest.raises(GenieError, match="'a'"):
        evaluate_gmner(GOLD, [rec("a"), rec("a")])


def test_prediction_with_two_boxes_raises():
    with pytest.raises(GenieError, match="at most 1"):
        evaluate_gmner(GOLD, [rec("a", ent(0, 2, "PER", [BOX, FAR]))])


def test_missing_prediction_records_are_counted_and_predict_nothing():
    out = evaluate_gmner(GOLD, [GOLD[0]])
    assert out["missing_predictions"] == 1
    assert counts(out["gmner"]) == (2, 2, 3)
    assert out["gmner"]["recall"] == pytest.approx(200 / 3)
    assert out["gmner"]["precision"] == pytest.approx(100.0)


def test_type_of_selects_the_type_compared():
    gold = [rec("a", ent(0, 2, "PER/politician", [BOX]))]
    pred = [rec("a", ent(0, 2, "PER/athlete", [BOX]))]
    assert evaluate_gmner(gold, pred)["gmner"]["correct"] == 0
    coarse = evaluate_gmner(gold, pred, type_of=lambda e: e.type.split("/")[0])
    assert counts(coarse["gmner"]) == (1, 1, 1)
