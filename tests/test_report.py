"""`genie report`: every error kind found where it is, the page's numbers those of `genie
evaluate`, and the page working in a real browser (Debian's chromium, headless: loaded, filtered
through its address, the rows shown counted from the rendered DOM, screenshots: box labels drawn
beside their boxes, green when right and red when wrong); no grounding words for tasks without it."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cli_output import run_cli
from demo_sets import small_demos
from PIL import Image

from genie.analysis.error_analysis import KINDS, analyse
from genie.analysis.report import write_report
from genie.records import Entity, Record, Relation, read_records, write_records
from genie.tasks import get_task

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium: `apt-get install chromium` (make install "
                                                            "does it where it may)")


def entity(start, type_, boxes=(), text="x", **extra) -> Entity:
    return Entity(start, start + 1, text, type_, [list(b) for b in boxes], **extra)


def test_each_error_kind_is_found_where_it_is():
    tokens = ["a", "b", "c", "d", "e", "f"]
    box, far = [0, 0, 10, 10], [50, 50, 60, 60]
    gold = Record("1", "gmner", tokens, "i", [entity(0, "PER", [box]), entity(1, "LOC"), entity(2, "ORG", [box]),
                                              entity(3, "PER"), entity(4, "LOC", [box])])
    pred = Record("1", "gmner", tokens, "i", [entity(0, "PER", [[1, 1, 10, 10]]),  # right (IoU 0.81)
                                              entity(1, "ORG"),  # wrong type
                                              entity(2, "ORG", [far]),  # wrong box
                                              entity(3, "PER", in_image=True),  # wrong groundability
                                              entity(5, "PER")])  # spurious; gold 4 is missed
    analysis = analyse([gold, replace(gold, id="2")], [pred])
    first, second = analysis.posts
    assert first.kinds == {"missed": 1, "spurious": 1, "wrong_type": 1, "wrong_groundability": 1, "wrong_box": 1}
    assert [first.status[("gold", k)] for k in range(5)] == ["ok", "wrong_type", "wrong_box", "wrong_groundability",
                                                              "missed"]
    assert second.kinds == {"missed": 5} and analysis.missing_predictions == 1
    assert analysis.confusion == {("PER", "PER"): 2, ("LOC", "ORG"): 1, ("ORG", "ORG"): 1}
    assert sorted(round(iou, 2) for iou in analysis.ious) == [0.0, 0.81]
    assert analysis.groundability == {(True, True): 2, (False, True): 1}

    related = Record("3", "jmere", tokens, "i", [entity(0, "PER"), entity(1, "LOC")], [Relation(0, 1, "/per/loc")])
    reversed_ = replace(related, relations=[Relation(1, 0, "/per/loc")])
    assert analyse([related], [reversed_]).posts[0].kinds == {"wrong_relation": 1}
    assert analyse([related], [copy.deepcopy(related)]).posts[0].kinds == {}


def test_a_repeated_prediction_is_spurious_never_correct():
    """Only a span's first prediction is matched with gold; each repeat is spurious, right or wrong."""
    tokens = ["NBA", "is", "back"]
    gold = Record("1", "mner", tokens, "i", [entity(0, "ORG")])
    for first in ("ORG", "PER"):
        post = analyse([gold], [replace(gold, entities=[entity(0, first)] + [entity(0, "PER")] * 4)]).posts[0]
        assert [post.status[("pred", k)] for k in range(5)] == ["ok" if first == "ORG" else "wrong_type"] + ["spurious"] * 4
        assert post.kinds["spurious"] == 4
    assert analyse([gold], [replace(gold, entities=[entity(0, "ORG")] * 3)]).per_type()["ORG"] == (1, 3, 1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path]:
    """GMNER demo test posts and predictions made from them with errors of every kind."""
    root = small_demos(tmp_path_factory.mktemp("report"), ["gmner"], n_train=10, n_dev=10, n_test=40, feature_dim=8)
    gold = read_records(root / "gmner" / "test.jsonl")
    pred = copy.deepcopy(gold)
    for record in pred:  # a prediction has at most one box per entity
        for e in record.entities:
            e.boxes = e.boxes[:1]
    for k, record in enumerate(pred):
        if not record.entities:
            continue
        first = record.entities[0]
        if k % 5 == 0:
            record.entities.pop(0)  # missed
        elif k % 5 == 1:
            first.type = "PER" if first.type != "PER" else "LOC"  # wrong type
        elif k % 5 == 2 and first.boxes:
            first.boxes = [[b + 500 for b in first.boxes[0]]]  # wrong box
    write_records(root / "pred.jsonl", pred)
    return root / "gmner" / "test.jsonl", root / "pred.jsonl"


def test_the_page_has_every_section_and_the_numbers_of_genie_evaluate(demo, tmp_path):
    gold_file, pred_file = demo
    gold, pred = read_records(gold_file), read_records(pred_file)
    task = get_task("gmner")
    summary = write_report(task, gold, pred, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    for section in ("scores", "confusion", "boxes", "posts", "iou-histogram"):
        assert f"id='{section}'" in page
    assert not re.search(r"(src|href)=['\"]?(https?:|//)|<link|<script src", page)  # it opens from disk alone
    analysis = analyse(gold, pred)
    expected = {kind: sum(post.kinds[kind] > 0 for post in analysis.posts) for kind in KINDS}
    assert summary["posts_by_kind"] == expected and expected["missed"] and expected["wrong_type"]
    assert expected["wrong_box"] and summary["posts"] == len(gold)
    assert page.count("class='post'") == len(gold)
    # per type, counted by the report, adds up to the task's own counts
    score = task.evaluate(gold, pred)["gmner"]
    counts = analysis.per_type().values()
    assert [sum(c[i] for c in counts) for i in range(3)] == [score["correct"], score["predicted"], score["gold"]]


def test_images_are_referenced_beside_the_page_and_missing_ones_counted(demo, tmp_path):
    gold_file, pred_file = demo
    gold = read_records(gold_file)
    images = tmp_path / "images"
    images.mkdir()
    for record in gold[:3]:
        Image.new("RGB", (640, 480), "white").save(images / f"{record.image_id}.jpg")
    summary = write_report(get_task("gmner"), gold, read_records(pred_file), tmp_path / "out" / "report.html", images)
    page = (tmp_path / "out" / "report.html").read_text()
    assert summary["posts_without_image"] == len(gold) - 3
    assert page.count("<image href='../images/") == 3 and "viewBox='0 0 640 480'" in page


def test_bad_input_is_one_line(demo, tmp_path, capsys):
    gold_file, _ = demo
    code, line = run_cli(capsys, "report", "--task", "gmner", "--gold", gold_file, "--pred", tmp_path / "none.jsonl",
                         "--out", tmp_path / "r.html")
    assert code == 2 and line == f"genie: error: {tmp_path / 'none.jsonl'}: no such file"
    code, line = run_cli(capsys, "report", "--task", "mner", "--gold", gold_file, "--pred", gold_file, "--out",
                         tmp_path / "r.html")
    assert code == 2 and "is a gmner record, not mner" in line and not (tmp_path / "r.html").exists()


def rendered(page: Path, address: str = "") -> str:
    done = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           f"{page.resolve().as_uri()}{address}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def shown(dom: str) -> tuple[int, str]:
    """Posts the browser shows (rows without `hidden`), and the page's own count line."""
    rows = re.findall(r"<div class=\"post\"[^>]*>", dom)
    return sum("hidden" not in row for row in rows), re.search(r"id=\"shown\">([^<]*)<", dom).group(1)


@needs_browser
def test_the_page_filters_in_a_real_browser(demo, tmp_path):
    gold_file, pred_file = demo
    summary = write_report(get_task("gmner"), read_records(gold_file), read_records(pred_file), tmp_path / "r.html")
    total = summary["posts"]
    assert shown(rendered(tmp_path / "r.html")) == (total, f"{total} of {total} posts shown")
    errors = summary["posts_with_errors"]
    assert 0 < errors < total
    assert shown(rendered(tmp_path / "r.html", "#errors")) == (errors, f"{errors} of {total} posts shown")
    boxes = summary["posts_by_kind"]["wrong_box"]
    assert shown(rendered(tmp_path / "r.html", "#kind=wrong_box")) == (boxes, f"{boxes} of {total} posts shown")
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1100,1400", f"--screenshot={tmp_path / 'shot.png'}",
                    f"{(tmp_path / 'r.html').resolve().as_uri()}#errors"], capture_output=True, timeout=120, check=True)
    with Image.open(tmp_path / "shot.png") as shot:
        assert shot.size == (1100, 1400) and len(shot.convert("L").getcolors(256)) > 10  # drawn, not blank


@needs_browser
def test_a_test_set_as_big_as_twitter_2015s_loads_and_filters(demo, tmp_path):
    """3,257 posts (Twitter-2015's test split): the page loads and filters within the browser's run."""
    gold_file, pred_file = demo
    gold, pred = read_records(gold_file), read_records(pred_file)
    copies = -(-3257 // len(gold))
    big_gold = [replace(r, id=f"{r.id}-{c}") for c in range(copies) for r in gold][:3257]
    big_pred = [replace(r, id=f"{r.id}-{c}") for c in range(copies) for r in pred][:3257]
    summary = write_report(get_task("gmner"), big_gold, big_pred, tmp_path / "big.html")
    errors = summary["posts_with_errors"]
    assert shown(rendered(tmp_path / "big.html", "#errors")) == (errors, f"{errors} of 3257 posts shown")


RIGHT, WRONG = (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E)  # the page's green and red


def screenshot(page: Path, shot: Path, size: str = "1100,2400") -> Image.Image:
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", f"--screenshot={shot}", page.resolve().as_uri()],
                   capture_output=True, timeout=120, check=True)
    return Image.open(shot).convert("RGB")


def pixels_of(shot: Image.Image, colour, box) -> int:
    """Pixels within 40 of `colour` on each channel inside `box` (left, top, right, bottom)."""
    region = shot.crop(tuple(round(v) for v in box))
    return sum(all(abs(a - b) <= 40 for a, b in zip(pixel, colour)) for pixel in region.get_flattened_data())


@needs_browser
def test_boxes_are_labelled_over_the_image_green_when_right_red_when_wrong(tmp_path):
    """A right entity (gold and predicted box, labelled above and below it) and a spurious one
    (predicted box, labelled below) over a blue image: the screenshot has the labels' colours
    beside their boxes, where no box line is."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (400, 300), (0, 0, 255)).save(images / "i.png")
    tokens = ["Alice", "met", "Bob"]
    right, spurious = [100, 150, 200, 250], [250, 40, 350, 100]
    gold = Record("p1", "gmner", tokens, "i", [entity(0, "PER", [right], text="Alice")])
    pred = replace(gold, entities=[entity(0, "PER", [right], text="Alice"), entity(2, "PER", [spurious], text="Bob")])
    write_report(get_task("gmner"), [gold], [pred], tmp_path / "r.html", images)
    page = (tmp_path / "r.html").read_text()
    assert ">Alice [PER]</text>" in page and ">Bob [PER]</text>" in page
    shot = screenshot(tmp_path / "r.html", tmp_path / "shot.png")
    blue = [(x, y) for x in range(0, shot.width, 2) for y in range(0, shot.height, 2)
            if shot.getpixel((x, y)) == (0, 0, 255)]
    left, top = min(x for x, _ in blue), min(y for _, y in blue)
    scale = (max(x for x, _ in blue) - left) / 400  # screen pixels per image pixel

    def on_screen(x0, y0, x1, y1):
        return left + x0 * scale, top + y0 * scale, left + x1 * scale, top + y1 * scale

    label = 20  # image pixels: a little more than a label's height (11 CSS pixels at 400/280 per pixel)
    above_right, below_right = on_screen(100, 150 - label, 300, 146), on_screen(100, 254, 300, 250 + label)
    below_spurious = on_screen(250, 104, 400, 100 + label)
    assert pixels_of(shot, RIGHT, above_right) > 20 and pixels_of(shot, WRONG, above_right) == 0
    assert pixels_of(shot, RIGHT, below_right) > 20 and pixels_of(shot, WRONG, below_right) == 0
    assert pixels_of(shot, WRONG, below_spurious) > 20 and pixels_of(shot, RIGHT, below_spurious) == 0
    # the boxes' own lines: the right one green, the spurious one red
    assert pixels_of(shot, RIGHT, on_screen(95, 170, 105, 230)) > 5
    assert pixels_of(shot, WRONG, on_screen(245, 50, 255, 90)) > 5


@needs_browser
def test_the_iou_histogram_counts_on_its_axis(demo, tmp_path):
    gold, pred = read_records(demo[0]), read_records(demo[1])
    write_report(get_task("gmner"), gold, pred, tmp_path / "r.html")
    bins = [0] * 10
    for iou in analyse(gold, pred).ious:
        bins[min(int(iou * 10), 9)] += 1
    histogram = re.search(r"<svg id=\"iou-histogram\".*?</svg>", rendered(tmp_path / "r.html")).group(0)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", histogram)
    assert {"0", str(max(bins) // 2), str(max(bins)), "entities", "IoU"} <= set(texts) and max(bins) > 2


def visible_text(dom: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)>.*?</\1>", "", dom, flags=re.S))


@needs_browser
def test_tasks_without_grounding_show_no_grounding(tmp_path):
    """MNER reads the image but grounds nothing: the image without boxes, no "in the image", no box
    filters; the error rows red, the correct ones green."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 48), "white").save(images / "i.jpg")
    tokens = ["Alice", "in", "Paris"]
    gold = [Record("right", "mner", tokens, "i", [entity(0, "PER", text="Alice")]),
            Record("wrong", "mner", tokens, "i", [entity(0, "PER", text="Alice"), entity(2, "LOC", text="Paris")])]
    pred = [gold[0], replace(gold[1], entities=[entity(0, "ORG", text="Alice")])]
    write_report(get_task("mner"), gold, pred, tmp_path / "r.html", images)
    dom = rendered(tmp_path / "r.html")
    text = visible_text(dom).lower()
    assert "alice [per]" in text and "paris [loc]" in text and "missed" in text
    assert "in the image" not in text and "box" not in text and "canvas" not in text
    assert dom.count("<image href=\"images/i.jpg\"") == 2 and "<rect" not in dom
    assert re.findall(r"<div class=\"kind (\w+)\">(\w+):", dom) == [("ok", "right"), ("bad", "wrong")]
    grounded = visible_text(rendered(write_gmner(tmp_path))).lower()
    assert "in the image" in grounded and "wrong box" in grounded  # what the test above looks for is there


def write_gmner(tmp_path: Path) -> Path:
    gold = Record("g", "gmner", ["Alice"], "i", [entity(0, "PER", [[0, 0, 10, 10]], text="Alice")])
    write_report(get_task("gmner"), [gold], [gold], tmp_path / "gmner.html")
    return tmp_path / "gmner.html"


def test_labels_of_boxes_side_by_side_do_not_cover_each_other(tmp_path):
    """Two predicted boxes ending on one line: their labels go on two lines; a label that would
    run off the image ends at its box's right edge (the canvas is 100 wide: a label is about 2.4
    units a letter)."""
    tokens = ["Alice", "and", "Bob", "Bartholomew"]
    gold = Record("p", "gmner", tokens, "i", [entity(0, "PER", [[0, 0, 60, 80]], text="Alice"),
                                              entity(2, "PER", [[10, 0, 100, 80]], text="Bob"),
                                              entity(3, "PER", [[70, 0, 100, 80]], text="Bartholomew")])
    write_report(get_task("gmner"), [gold], [gold], tmp_path / "r.html")
    labels = re.findall(r"<text x='(\d+)' y='(\d+)' text-anchor='(\w+)'[^>]*>([^<]*)</text>",
                        (tmp_path / "r.html").read_text())
    assert [text for *_, text in labels] == ["Alice [PER]", "Bob [PER]", "Bartholomew [PER]"] * 2
    gold_a, gold_b, gold_c, pred_a, pred_b, pred_c = [(int(x), int(y), anchor) for x, y, anchor, _ in labels]
    assert gold_a[1] != gold_b[1] and pred_a[1] != pred_b[1]
    assert gold_a[0] == pred_a[0] == 0 and gold_a[2] == pred_a[2] == "start"  # where its box starts
    assert gold_c[0] == pred_c[0] == 100 and gold_c[2] == pred_c[2] == "end"
