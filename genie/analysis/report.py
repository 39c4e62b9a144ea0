"""`genie report`: one self-contained HTML page for error analysis (no server, no network).

The scores `genie evaluate` prints, per type; the type confusion on matched spans; for grounded
tasks, an IoU histogram of predicted against gold boxes and the groundability confusion; then one
row per post, filterable to errors and by error kind (`genie.analysis.error_analysis`), with gold and
predicted entities marked in the text and, for grounded tasks, their boxes drawn over the image
(referenced relative to the page) or, without one, over an empty canvas, each box labelled with its
entity. Green is right and red wrong everywhere (entities, boxes, their labels); tasks without
grounding show no grounding words or boxes. The filters read the page's address too
(`report.html#errors`, `#kind=wrong_box`), so a link can open a filtered view."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from genie.analysis.error_analysis import IOU_MATCH, KINDS, Analysis, Post, analyse, in_image, type_name
from genie.errors import GenieError
from genie.eval.scores import prf
from genie.io import atomic_write
from genie.records import Record
from genie.tasks import Task

IMAGE_SUFFIXES = ("", ".jpg", ".jpeg", ".png")
RIGHT, WRONG = "#1a7f37", "#cf222e"  # the only colours that mean anything: right and wrong
GROUNDING_KINDS = ("wrong_groundability", "wrong_box")  # not offered as filters for tasks without grounding
PICTURE_WIDTH = 280  # CSS pixels; box labels are sized for it
STYLE = f"""
body{{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:8px 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}
.post{{border-top:1px solid #ddd;padding:8px 0;display:flex;gap:16px}}.post[hidden]{{display:none}}
.text{{max-width:640px}}.g{{border-bottom:2px solid #444}}.p{{background:#ffe08a}}.kind{{font-size:12px}}
.ents{{font-size:12px;color:#555}}.context{{font-size:12px;color:#555;font-style:italic}}.ok{{color:{RIGHT}}}
.bad{{color:{WRONG}}}svg.img{{background:#eee;width:{PICTURE_WIDTH}px;height:auto}}
#filters{{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #ccc}}
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
    canvas = " (boxes drawn on an empty canvas)" if task.grounded else ""
    parts = [f"<h1>genie report: {escape(task.name)}</h1>",
             f"<p>{len(gold)} gold posts, {len(pred)} predicted; {analysis.missing_predictions} without a "
             "prediction (they predict nothing)."
             + (f" {no_image} posts have no image in {escape(str(images))}{canvas}." if images else "") + "</p>",
             _scores(metrics, analysis), _confusion(analysis)]
    if task.grounded:
        parts.append(_boxes(analysis))
    parts.append(_posts(analysis, out.parent, pictures, task.grounded))
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
    left = 40  # room for the count axis
    bars = "".join(f"<rect x='{left + i * 30}' y='{100 - 100 * n / top:.1f}' width='26' height='{100 * n / top:.1f}' "
                   f"fill='{RIGHT if i >= IOU_MATCH * 10 else WRONG}'><title>IoU {i / 10:.1f}-"
                   f"{(i + 1) / 10:.1f}: {n}</title></rect>" for i, n in enumerate(bins))
    labels = "".join(f"<text x='{left + i * 30 + 2}' y='114' font-size='10'>{i / 10:.1f}</text>" for i in range(10))
    counts = "".join(f"<text x='{left - 6}' y='{100 - 100 * n / top + 4:.1f}' font-size='10' text-anchor='end'>{n}"
                     f"</text><line x1='{left - 3}' x2='{left}' y1='{100 - 100 * n / top:.1f}' "
                     f"y2='{100 - 100 * n / top:.1f}' stroke='#222'/>" for n in sorted({0, top // 2, top}))
    axis = (f"<line x1='{left}' x2='{left}' y1='0' y2='100' stroke='#222'/><text x='10' y='50' font-size='10' "
            f"text-anchor='middle' transform='rotate(-90 10 50)'>entities</text>"
            f"<text x='{left + 150}' y='130' font-size='10' text-anchor='middle'>IoU</text>")
    histogram = (f"<svg id='iou-histogram' width='{left + 300}' height='144'><g transform='translate(0 10)'>"
                 f"{bars}{labels}{counts}{axis}</g></svg>")  # 10 pixels above: room for the top count
    g = analysis.groundability
    table = _table(["gold \\ predicted", "in the image", "not in the image"],
                   [["in the image", g[(True, True)], g[(True, False)]],
                    ["not in the image", g[(False, True)], g[(False, False)]]])
    return (f"<section id='boxes'><h2>Boxes</h2><p>{len(analysis.ious)} matched entities with a predicted and a "
            f"gold box: IoU of the predicted box with the best gold box (green: at least {IOU_MATCH}).</p>"
            f"{histogram}<h3>Groundability on matched spans of the right type</h3>{table}</section>")


def _posts(analysis: Analysis, page_dir: Path, pictures: dict[str, Path | None], grounded: bool) -> str:
    options = "".join(f"<option value='{k}'>{k.replace('_', ' ')}</option>" for k in KINDS
                      if grounded or k not in GROUNDING_KINDS)
    filters = (f"<div id='filters'><label><input type='checkbox' id='errors-only'> errors only</label> "
               f"<select id='kind'><option value=''>any error kind</option>{options}</select> "
               f"<span id='shown'></span></div>")
    key = ("<p>Gold entities are underlined, predicted ones highlighted; <span class='ok'>green: right</span>, "
           "<span class='bad'>red: wrong</span>"
           + (". Boxes: gold solid, labelled above; predicted dashed, labelled below.</p>" if grounded else ".</p>"))
    return ("<section id='posts'><h2>Posts</h2>" + key + filters
            + "".join(_post(post, page_dir, pictures.get(post.gold.id), grounded) for post in analysis.posts)
            + "</section>")


def _post(post: Post, page_dir: Path, image: Path | None, grounded: bool) -> str:
    kinds = " ".join(kind for kind in KINDS if post.kinds[kind])
    marks = []
    for i, token in enumerate(post.gold.tokens):
        classes = [c for c, record in (("g", post.gold), ("p", post.pred))
                   if any(e.start <= i < e.end for e in record.entities)]
        marks.append(f"<span class='{' '.join(classes)}'>{escape(token)}</span>" if classes else escape(token))
    entities = (_entities("gold", post.gold, post, grounded) + _entities("predicted", post.pred, post, grounded)
                + _relations(post))
    picture = _picture(post, page_dir, image, grounded)
    return (f"<div class='post' data-kinds='{kinds}' id='{escape(post.gold.id)}'><div>{picture}</div>"
            f"<div class='text'><div class='kind {'bad' if kinds else 'ok'}'>{escape(post.gold.id)}: "
            f"{escape(kinds) or 'correct'}</div>"
            f"<p>{' '.join(marks)}</p>{_context(post)}{entities}</div></div>")


def _context(post: Post) -> str:
    """What the model read beside the tweet (the gold file's context and given objects, else the
    predictions')."""
    objects = [f"{escape(o.name)} [{', '.join(f'{v:g}' for v in o.box)}]" for o in post.gold.objects or post.pred.objects]
    return ("".join(f"<div class='context'>{escape(c.source)}: {escape(c.text)}</div>"
                    for c in post.gold.context or post.pred.context)
            + (f"<div class='context'>given objects: {'; '.join(objects)}</div>" if objects else ""))


def _entities(side: str, record: Record, post: Post, grounded: bool) -> str:
    key = "gold" if side == "gold" else "pred"
    items = []
    for k, e in enumerate(record.entities):
        status = post.status.get((key, k), "ok")
        where = (", in the image" if in_image(e) else ", not in the image") if grounded else ""
        items.append(f"<span class='{'ok' if status == 'ok' else 'bad'}'>{escape(e.text)} "
                     f"[{escape(type_name(e))}{where}]"
                     f"{'' if status == 'ok' else ' ' + status.replace('_', ' ')}</span>")
    return f"<div class='ents'>{side}: {'; '.join(items) or 'none'}</div>"


def _relations(post: Post) -> str:
    rows = []
    for side, record in (("gold", post.gold), ("predicted", post.pred)):
        e = record.entities
        o = record.objects
        arcs = [f"{escape(e[r.head].text)} -> {escape(o[r.tail].name if r.tail_object else e[r.tail].text)} "
                f"({escape(r.type)})" for r in record.relations
                if r.head < len(e) and r.tail < len(o if r.tail_object else e)]
        if arcs:
            rows.append(f"<div class='ents'>{side} relations: {'; '.join(arcs)}</div>")
    return "".join(rows)


def _picture(post: Post, page_dir: Path, found: Path | None, grounded: bool) -> str:
    """The image with, for grounded tasks, gold (solid, labelled above) and predicted (dashed,
    labelled below) boxes, green where the entity is right and red where not; without an image, an
    empty canvas as large as the boxes."""
    sides = (("gold", post.gold), ("pred", post.pred)) if grounded else ()
    boxes = [(b, f"{e.text} [{type_name(e)}]", post.status.get((side, k), "ok"), side) for side, record in sides
             for k, e in enumerate(record.entities) for b in e.boxes]
    if found is None and not boxes:
        return ""
    if found is not None:
        from PIL import Image

        with Image.open(found) as image:
            width, height = image.size
        picture = f"<image href='{escape(os.path.relpath(found, page_dir))}' width='{width}' height='{height}'/>"
    else:
        width = max([b[2] for b, *_ in boxes] + [100])
        height = max([b[3] for b, *_ in boxes] + [100])
        picture = ""
    scale = width / PICTURE_WIDTH  # image pixels per CSS pixel
    font = 11 * scale
    places = _place_labels(boxes, width, height, font)
    return (f"<svg class='img' viewBox='0 0 {width:.0f} {height:.0f}'>{picture}"
            + "".join(_box(*box, place, font, scale) for box, place in zip(boxes, places)) + "</svg>")


def _place_labels(boxes: list[tuple[list[float], str, str, str]], width: float, height: float,
                  font: float) -> list[tuple[float, float, str]]:
    """(x, baseline y, text-anchor) of each box's label: above a gold box and below a predicted
    one, just inside it where the image has no room, ending at the box's right edge where it would
    run off the image; moved a line further while it would cover a label placed before, so several
    entities in one image stay readable."""
    placed, places = [], []
    for (x0, y0, x1, y1), label, _, side in boxes:
        wide = 0.62 * font * len(label)  # about, in a bold sans-serif
        x, anchor = (x0, "start") if x0 + wide <= width else (min(x1, width), "end")
        left = x if anchor == "start" else x - wide
        out, inside = (y0 - 0.3 * font, y0 + font) if side == "gold" else (y1 + font, y1 - 0.3 * font)
        away = -font if side == "gold" else font  # outwards from the box
        rows = [y for k in range(len(boxes)) for y in (out + k * away, inside - k * away) if font <= y <= height]
        free = [y for y in rows if not any(left < r and left + wide > l and y - font < b and y > t
                                           for l, t, r, b in placed)]
        y = (free or rows or [out])[0]
        placed.append((left, y - font, left + wide, y))
        places.append((x, y, anchor))
    return places


def _box(box: list[float], label: str, status: str, side: str, place: tuple[float, float, str], font: float,
         scale: float) -> str:
    """One box and its entity's label (text and type), haloed in white to read over any image."""
    x0, y0, x1, y1 = box
    x, y, anchor = place
    color = RIGHT if status == "ok" else WRONG
    dash = f" stroke-dasharray='{6 * scale:.1f} {3 * scale:.1f}'" if side == "pred" else ""
    return (f"<rect x='{x0:.0f}' y='{y0:.0f}' width='{x1 - x0:.0f}' height='{y1 - y0:.0f}' fill='none' "
            f"stroke='{color}' stroke-width='{2 * scale:.1f}'{dash}/>"
            f"<text x='{x:.0f}' y='{y:.0f}' text-anchor='{anchor}' font-size='{font:.1f}' font-weight='bold' "
            f"fill='{color}' stroke='#fff' stroke-width='{3 * scale:.1f}' paint-order='stroke'>{escape(label)}</text>")


def _image_file(images: Path, image_id: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        path = images / f"{image_id}{suffix}"
        if path.is_file():
            return path
    return None
