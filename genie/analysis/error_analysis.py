"""What went wrong in each post, for `genie report`: each gold and predicted entity matched by
span, the kind of each error, the type confusion on matched spans, and how predicted boxes fare.

Error kinds (a post may have several):
- missed: a gold span no prediction has; spurious: a predicted span gold does not have, or a
  repeat of a span already predicted in the post (only the first one is matched with gold);
- wrong_type: a matched span with another type (the fine type too, where the task has one);
- wrong_groundability: a matched span said to be in the image when it is not, or the reverse;
- wrong_box: both in the image, and the predicted box overlaps every gold box below IoU 0.5;
- wrong_relation: the post's (head span, tail span, type) relations differ.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from genie.eval.boxes import iou_matrix
from genie.eval.scores import pair_records
from genie.records import Entity, Record

KINDS = ("missed", "spurious", "wrong_type", "wrong_groundability", "wrong_box", "wrong_relation")
IOU_MATCH = 0.5  # the published GMNER rule for a correct box


def in_image(entity: Entity) -> bool:
    return bool(entity.boxes) or entity.in_image


def best_iou(pred: Entity, gold: Entity) -> float | None:
    """The predicted box's best IoU with a gold box; None unless both have boxes."""
    if not pred.boxes or not gold.boxes:
        return None
    return float(iou_matrix(pred.boxes[:1], gold.boxes).max())


@dataclass
class Post:
    gold: Record
    pred: Record
    kinds: Counter = field(default_factory=Counter)
    status: dict = field(default_factory=dict)  # ("gold" | "pred", entity index) -> its kind, or "ok"


@dataclass
class Analysis:
    posts: list[Post]
    confusion: Counter  # (gold type, predicted type) on matched spans
    ious: list[float]  # per matched span with a box on both sides
    groundability: Counter  # (gold in image, predicted in image) on matched spans of the same type
    missing_predictions: int

    def per_type(self) -> dict[str, tuple[int, int, int]]:
        """(correct, predicted, gold) per type: an entity is correct when its error kind is none."""
        counts: dict[str, list[int]] = {}
        for post in self.posts:
            for side, record, column in (("pred", post.pred, 1), ("gold", post.gold, 2)):
                for k, entity in enumerate(record.entities):
                    row = counts.setdefault(type_name(entity), [0, 0, 0])
                    row[column] += 1
                    row[0] += side == "pred" and post.status.get(("pred", k)) == "ok"
        return {name: tuple(row) for name, row in sorted(counts.items())}


def type_name(entity: Entity) -> str:
    """The type as scored: with its fine type, where the task has one (FMNERG: `PER/athlete`)."""
    return f"{entity.type}/{entity.fine_type}" if entity.fine_type else entity.type


def analyse(gold: list[Record], pred: list[Record]) -> Analysis:
    pairs, missing = pair_records(gold, pred)
    confusion, groundability, ious, posts = Counter(), Counter(), [], []
    for gold_record, pred_record in pairs:
        pred_record = pred_record or Record(gold_record.id, gold_record.task, gold_record.tokens, gold_record.image_id)
        post = Post(gold_record, pred_record)
        predicted: dict[tuple[int, int], tuple[int, Entity]] = {}
        for k, e in enumerate(pred_record.entities):
            predicted.setdefault(e.span, (k, e))  # the first prediction of a span; a repeat is spurious
        matched = set()
        for k, entity in enumerate(gold_record.entities):
            if entity.span not in predicted:
                post.status[("gold", k)] = "missed"
                post.kinds["missed"] += 1
                continue
            j, guess = predicted[entity.span]
            matched.add(j)
            confusion[(type_name(entity), type_name(guess))] += 1
            kind = "ok"
            if type_name(guess) != type_name(entity):
                kind = "wrong_type"
            else:
                groundability[(in_image(entity), in_image(guess))] += 1
                iou = best_iou(guess, entity)
                if iou is not None:
                    ious.append(iou)
                if in_image(entity) != in_image(guess):
                    kind = "wrong_groundability"
                elif iou is not None and iou < IOU_MATCH:
                    kind = "wrong_box"
            post.status[("gold", k)] = post.status[("pred", j)] = kind
            if kind != "ok":
                post.kinds[kind] += 1
        for j in range(len(pred_record.entities)):
            if j not in matched:
                post.status[("pred", j)] = "spurious"
                post.kinds["spurious"] += 1
        if _relations(gold_record) != _relations(pred_record):
            post.kinds["wrong_relation"] += 1
        posts.append(post)
    return Analysis(posts, confusion, ious, groundability, missing)


def _relations(record: Record) -> set[tuple]:
    entities = record.entities
    return {(entities[r.head].span, entities[r.tail].span, r.type) for r in record.relations
            if r.head < len(entities) and r.tail < len(entities)}
