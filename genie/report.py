"""`genie report`: one self-contained HTML page for error analysis (no server, no network).

The scores `genie evaluate` prints, per type; the type confusion on matched spans; for grounded
tasks, an IoU histogram of predicted against gold boxes and the groundability confusion; then one
row per post, filterable to errors and by error kind (`genie.error_analysis`), with gold and
predicted entities marked in the text and their boxes drawn over the image (referenced relative to
the page) or, without one, over an empty canvas. The filters read the page's address too
(`report.html#errors`, `#kind=wrong_box`), so a link can open a filtered view."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from genie.error_analysis import IOU_MATCH, KINDS, Analysis, Post, analyse, in_image
from genie.errors import GenieError
from genie.eval.scores import prf
from genie.io import atomic_write
from genie.records import Record
from genie.tasks import Task

IMAGE_SUFFIXES = ("", ".jpg", ".jpeg", ".png")
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
.post{border-top:1px solid #ddd;padding:8px 0;display:flex;gap:16px}.post[hidden]{display:none}
.text{max-width:640px}.g{border-bottom:2px solid #1a7f37}.p{background:#ffe08a}.kind{font-size:12px;color:#a40e26}
.ents{font-size:12px;color:#555}.context{font-size:12px;color:#555;font-style:italic}.ok{color:#1a7f37}.bad{color:#a40e26}svg.img{background:#eee;width:280px;height:auto}
#filters{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ccc}
"""
SCRIPT = """
const posts=[...document.querySelectorAll('.post')],only=document.getElementById('errors-only'),
kind=document.getElementById('kind'),shown=document.getElementById('shown');
function apply(){let n=0;for(const p of posts){const k=p.dataset.kinds.split(' ').filter(Boolean);
const show=(!only.checked||k.length>0)&&(!kind.value||k.includes(kind.value));p.hidden=!show;n+=show;}
shown.textContent=n+' of '+posts.length+' posts shown';}
function fromAddress(){const h=decodeURIComponent(location.hash.slice(1));
if(h==='errors')only.checked=true;if(h.startsWith('kind=')){only.checked=true;kind.value=h.slice(5);}apply();}
only.addEventListener('change',apply);kind.addEventListener('change',apply);
window.addEventListener('hashchange',fromAddress);fromAddress();
"""


def write_report(task: Task, gold: list[Record], pred: list[Record], out: Path, images: Path | None = None) -> dict:
    """Write the page; returns what it shows in numbers (posts, posts with errors, per kind)."""
    metrics = task.evaluate(gold, pred)  # its one-line errors (ids, tokens, boxes) come first
    analysis = analyse(gold, pred)
    if images is not None and not images.is_dir():
        raise GenieError("no such folder of images", images)
    # each post's image file, looked up once (None: not there)
    pictures = {post.gold.id: _image_file(images, post.gold.image_id) for post in analysis.posts} if images else {}
    no_image = sum(found is None for found in pictures.values()) if images else None
    parts = [f"<h1>genie report: {escape(task.name)}</h1>",
             f"<p>{len(gold)} gold posts, {len(pred)} predicted; {analysis.missing_predictions} without a "
             "prediction (they predict nothing)."
             + (f" {no_image} posts have no image in {escape(str(images))} (boxes drawn on an empty canvas)."
                if images else "") + "</p>",
             _scores(metrics, analysis), _confusion(analysis)]
    if task.grounded:
        parts.append(_boxes(analysis))
    parts.append(_posts(analysis, out.parent, pictures))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>genie report: {escape(task.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}<script>{SCRIPT}</script></body></html>")
    with atomic_write(out) as handle:
        handle.write(page)
    with_errors = sum(any(post.kinds.values()) for post in analysis.posts)
    kinds = {kind: sum(post.kinds[kind] > 0 for post in analysis.posts) for kind in KINDS}
    summary = {"report": str(out), "posts": len(analysis.posts), "posts_with_errors": with_errors,
               "posts_by_kind": kinds}
    return summary if images is None else {**summary, "posts_without_image": no_image}


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _scores(metrics: dict, analysis: Analysis) -> str:
    """Every score `genie evaluate` prints (one level of nesting: `as_hindex gmner`), then per type:
    the task's own per-type scores, or, where it has none, the report's (an entity is right when
    its error kind is none)."""
    header = ["metric", "precision", "recall", "F1", "correct", "predicted", "gold"]
    fields = ("precision", "recall", "f1", "correct", "predicted", "gold")
    rows, other = [], []
    for name, value in metrics.items():
        if isinstance(value, dict) and "f1" in value:
            rows.append([name, *(value[f] for f in fields)])
        elif isinstance(value, dict) and name != "per_type":
            rows += [[f"{name} {inner}", *(score[f] for f in fields)] for inner, score in value.items()
                     if isinstance(score, dict) and "f1" in score]
        elif not isinstance(value, dict):
            other.append([name, value])
    if "per_type" in metrics:
        per_type, note = {name: [score[f] for f in fields] for name, score in metrics["per_type"].items()}, ""
    else:
        per_type = {name: [*prf(*counts).values()] for name, counts in analysis.per_type().items()}
        note = "<p>Counted by the report: an entity is right when its error kind is none.</p>"
    return ("<section id='scores'><h2>Scores</h2>" + _table(header, rows) + "<h3>Per type</h3>" + note
            + _table(header, [[name, *values] for name, values in per_type.items()])
            + _table(["other", "value"], other) + "</section>")


def _confusion(analysis: Analysis) -> str:
    gold_types = sorted({g for g, _ in analysis.confusion})
    pred_types = sorted({p for _, p in analysis.confusion})
    rows = [[g, *(analysis.confusion[(g, p)] for p in pred_types)] for g in gold_types]
    return ("<section id='confusion'><h2>Type confusion on matched spans</h2><p>Rows: gold type; columns: "
            "predicted type.</p>" + _table(["gold \\ predicted", *pred_types], rows) + "</section>")


def _boxes(analysis: Analysis) -> str:
    bins = [0] * 10
    for iou in analysis.ious:
        bins[min(int(iou * 10), 9)] += 1
    top = max(bins) or 1
    bars = "".join(f"<rect x='{i * 30}' y='{100 - 100 * n / top:.1f}' width='26' height='{100 * n / top:.1f}' "
                   f"fill='{'#1a7f37' if i >= IOU_MATCH * 10 else '#a40e26'}'><title>IoU {i / 10:.1f}-"
                   f"{(i + 1) / 10:.1f}: {n}</title></rect>" for i, n in enumerate(bins))
    labels = "".join(f"<text x='{i * 30 + 2}' y='114' font-size='10'>{i / 10:.1f}</text>" for i in range(10))
    histogram = f"<svg id='iou-histogram' width='300' height='120'>{bars}{labels}</svg>"
    g = analysis.groundability
    table = _table(["gold \\ predicted", "in the image", "not in the image"],
                   [["in the image", g[(True, True)], g[(True, False)]],
                    ["not in the image", g[(False, True)], g[(False, False)]]])
    return (f"<section id='boxes'><h2>Boxes</h2><p>{len(analysis.ious)} matched entities with a predicted and a "
            f"gold box: IoU of the predicted box with the best gold box (green: at least {IOU_MATCH}).</p>"
            f"{histogram}<h3>Groundability on matched spans of the right type</h3>{table}</section>")


def _posts(analysis: Analysis, page_dir: Path, pictures: dict[str, Path | None]) -> str:
    options = "".join(f"<option value='{k}'>{k.replace('_', ' ')}</option>" for k in KINDS)
    filters = (f"<div id='filters'><label><input type='checkbox' id='errors-only'> errors only</label> "
               f"<select id='kind'><option value=''>any error kind</option>{options}</select> "
               f"<span id='shown'></span></div>")
    return ("<section id='posts'><h2>Posts</h2>" + filters
            + "".join(_post(post, page_dir, pictures.get(post.gold.id)) for post in analysis.posts) + "</section>")


def _post(post: Post, page_dir: Path, image: Path | None) -> str:
    kinds = " ".join(kind for kind in KINDS if post.kinds[kind])
    marks = []
    for i, token in enumerate(post.gold.tokens):
        classes = [c for c, record in (("g", post.gold), ("p", post.pred))
                   if any(e.start <= i < e.end for e in record.entities)]
        marks.append(f"<span class='{' '.join(classes)}'>{escape(token)}</span>" if classes else escape(token))
    entities = (_entities("gold", post.gold, post) + _entities("predicted", post.pred, post)
                + _relations(post))
    return (f"<div class='post' data-kinds='{kinds}' id='{escape(post.gold.id)}'><div>{_picture(post, page_dir, image)}"
            f"</div><div class='text'><div class='kind'>{escape(post.gold.id)}: {escape(kinds) or 'correct'}</div>"
            f"<p>{' '.join(marks)}</p>{_context(post)}{entities}</div></div>")


def _context(post: Post) -> str:
    """What the model read beside the tweet (the gold file's context, else the predictions')."""
    return "".join(f"<div class='context'>{escape(c.source)}: {escape(c.text)}</div>"
                   for c in post.gold.context or post.pred.context)


def _entities(side: str, record: Record, post: Post) -> str:
    key = "gold" if side == "gold" else "pred"
    items = []
    for k, e in enumerate(record.entities):
        status = post.status.get((key, k), "ok")
        where = "in the image" if in_image(e) else "not in the image"
        items.append(f"<span class='{'ok' if status == 'ok' else 'bad'}'>{escape(e.text)} "
                     f"[{escape(e.type)}{'/' + escape(e.fine_type) if e.fine_type else ''}, {where}]"
                     f"{'' if status == 'ok' else ' ' + status.replace('_', ' ')}</span>")
    return f"<div class='ents'>{side}: {'; '.join(items) or 'none'}</div>"


def _relations(post: Post) -> str:
    rows = []
    for side, record in (("gold", post.gold), ("predicted", post.pred)):
        e = record.entities
        arcs = [f"{escape(e[r.head].text)} -> {escape(e[r.tail].text)} ({escape(r.type)})" for r in record.relations
                if r.head < len(e) and r.tail < len(e)]
        if arcs:
            rows.append(f"<div class='ents'>{side} relations: {'; '.join(arcs)}</div>")
    return "".join(rows)


def _picture(post: Post, page_dir: Path, found: Path | None) -> str:
    """The image with gold (green) and predicted (red, dashed) boxes; without it, an empty canvas
    as large as the boxes."""
    boxes = [(b, "#1a7f37", "") for e in post.gold.entities for b in e.boxes]
    boxes += [(b, "#d1242f", " stroke-dasharray='6 3'") for e in post.pred.entities for b in e.boxes]
    if found is None and not boxes:
        return ""
    if found is not None:
        from PIL import Image

        with Image.open(found) as image:
            width, height = image.size
        picture = f"<image href='{escape(os.path.relpath(found, page_dir))}' width='{width}' height='{height}'/>"
    else:
        width = max([b[2] for b, _, _ in boxes] + [100])
        height = max([b[3] for b, _, _ in boxes] + [100])
        picture = ""
    rects = "".join(f"<rect x='{b[0]:.0f}' y='{b[1]:.0f}' width='{b[2] - b[0]:.0f}' height='{b[3] - b[1]:.0f}' "
                    f"fill='none' stroke='{color}' stroke-width='{max(width, height) / 150:.1f}'{dash}/>"
                    for b, color, dash in boxes)
    return f"<svg class='img' viewBox='0 0 {width:.0f} {height:.0f}'>{picture}{rects}</svg>"


def _image_file(images: Path, image_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        path = images / f"{image_id}{suffix}"
        if path.is_file():
            return path
    return None
