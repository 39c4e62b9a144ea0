"""Raw posts in: JSON or plain-text lines, bad lines named or counted, images resolved, and
predictions given back with character offsets into the post's own text."""

from __future__ import annotations

import pytest

from genie.errors import GenieError
from genie.inference.posts import Post, RegionIds, post_prediction, post_records, read_posts
from genie.records import BadLines, Entity, Record


def test_json_and_plain_text_lines(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text('{"id": "a", "text": "Obama visits Paris", "image": "1.jpg"}\n\n'
                    "RT @nasa : Mars looks red #space\n \n"
                    '{"text": "no id here", "id": 7}\n', encoding="utf-8")
    posts, blank_lines = read_posts(path)
    assert posts == [Post("a", "Obama visits Paris", "1.jpg"), Post("3", "RT @nasa : Mars looks red #space"),
                     Post("7", "no id here")]
    assert blank_lines == 2  # skipped, and counted


def test_the_input_format_decides_how_a_line_is_read(tmp_path):
    path = tmp_path / "posts.txt"
    path.write_text('{braces} are how I feel today\n[BREAKING] Obama visits Paris\n', encoding="utf-8")
    with pytest.raises(GenieError, match="posts.txt:1: not a post: not valid JSON .*: --input-format text$"):
        read_posts(path)  # auto: a line starting with { is JSON
    posts, _ = read_posts(path, input_format="text")
    assert [(p.id, p.text) for p in posts] == [("1", "{braces} are how I feel today"),
                                               ("2", "[BREAKING] Obama visits Paris")]
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_text('{"text": "fine"}\n"a JSON string"\n', encoding="utf-8")
    assert read_posts(jsonl)[0][1].text == '"a JSON string"'  # auto: text
    with pytest.raises(GenieError, match="posts.jsonl:2: not a post: a JSON string, not a post object"):
        read_posts(jsonl, input_format="jsonl")
    assert read_posts(jsonl, input_format="text")[0][0].text == '{"text": "fine"}'
    with pytest.raises(GenieError, match="input format must be one of auto, jsonl, text, got 'json'"):
        read_posts(jsonl, input_format="json")


@pytest.mark.parametrize("input_format", ["auto", "jsonl"])
def test_a_json_line_that_is_not_a_post_object_is_named(tmp_path, input_format):
    path = tmp_path / "posts.jsonl"
    path.write_text('{"text": "fine"}\n["a", "list"]\n', encoding="utf-8")
    with pytest.raises(GenieError, match=r"posts.jsonl:2: not a post: a JSON array, not a post object; "
                                         r"for posts of plain text: --input-format text"):
        read_posts(path, input_format=input_format)


@pytest.mark.parametrize("line, problem", [
    ('{"text": ""}', "'text' must be a non-empty string"),
    ('{"text": "x", "image": 3}', "'image' must be a path or an image id"),
    ('{"text": "x", "imgae": "1.jpg"}', "unknown key 'imgae'"),
    ('{"text": "x"', "not valid JSON"),
])
def test_a_bad_line_is_named_or_counted(tmp_path, line, problem):
    path = tmp_path / "posts.jsonl"
    path.write_text(f'{{"text": "fine"}}\n{line}\n{{"text": "also fine"}}\n', encoding="utf-8")
    with pytest.raises(GenieError, match=f"posts.jsonl:2: not a post: {problem}"):
        read_posts(path)
    skipped = BadLines()
    assert [p.text for p in read_posts(path, skipped)[0]] == ["fine", "also fine"]
    assert skipped.count == 1 and problem in skipped.first


def test_repeated_ids_are_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n\n{"id": "a", "text": "y"}\n{"text": "z"}\n', encoding="utf-8")
    with pytest.raises(GenieError, match=r"posts.jsonl:3: post id 'a' is used twice \(first on line 1\)$"):
        read_posts(path)
    skipped = BadLines()
    assert [p.text for p in read_posts(path, skipped)[0]] == ["x", "z"] and skipped.count == 1


def test_files_of_one_name_get_distinct_region_ids_even_beside_a_file_named_like_one(tmp_path):
    region_id = RegionIds()
    files = [tmp_path / folder / name for folder, name in
             [("a", "1.jpg"), ("b", "1.jpg"), ("c", "1~2.jpg"), ("d", "1.jpg"), ("e", "1~2.jpg")]]
    ids = [region_id(path) for path in files]
    assert ids == ["1", "1~2", "1~2~2", "1~3", "1~2~3"] and region_id(files[1]) == "1~2"  # a file keeps its id


def test_images_are_resolved_and_counted(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    for folder in ("one", "two"):
        (tmp_path / folder / "1.jpg").write_bytes(b"x")
    posts = [Post("a", "x", "1"), Post("b", "y", str(tmp_path / "two" / "1.jpg")), Post("c", "z", "1.jpg"),
             Post("d", "w"), Post("e", "v", "missing.png")]
    run = post_records(posts, "gmner", tmp_path / "one")
    ids = [r.image_id for r in run.records]
    assert ids[0] == ids[2] == "1" and ids[1] == "1~2"  # one file once; another file of the same name apart
    assert ids[3] == "" and ids[4] == ""  # no image, and an image not found: no regions
    assert [job.image_id for job in run.jobs] == ["1", "1~2"]
    assert run.report() == {"posts": 5, "without_image": 1, "missing_images": 1, "bad_images": 0,
                            "first_missing_image": "missing.png"}
    run.without_regions(lambda key: key != "1~2", missing=False)  # its extraction failed
    assert run.records[1].image_id == "" and run.records[0].image_id == "1"
    assert (run.report()["bad_images"], run.report()["first_bad_image"]) == (1, str(tmp_path / "two" / "1.jpg"))
    by_id = post_records([posts[0], posts[4]], "gmner", None, by_id=True)
    assert [r.image_id for r in by_id.records] == ["1", "missing"] and not by_id.jobs  # ids of a region folder
    by_id.without_regions(lambda key: key == "1", missing=True)  # the folder lacks the second
    assert [r.image_id for r in by_id.records] == ["1", ""]
    assert (by_id.report()["missing_images"], by_id.report()["first_missing_image"]) == (1, "missing.png")


def test_a_summary_never_says_features_of_no_image():
    run = post_records([Post("a", "x")], "gmner", None)
    summary = run.summary({"parsed": 1}, "region features: none (text-only: features.dir unset)")
    assert summary["features"] == "region features: none (no post's image to read)" and summary["parsed"] == 1


def test_predictions_carry_character_offsets_into_the_text():
    post = Post("a", "RT @nasa: Barack  Obama visits\tParis!")
    record = post_records([post], "mner", None).records[0]
    assert record.tokens[:4] == ["RT", "@nasa", ":", "Barack"]
    k = record.tokens.index("Barack")
    predicted = Record(post.id, "mner", record.tokens, "", [
        Entity(k, k + 2, "Barack Obama", "PER"), Entity(record.tokens.index("Paris"), record.tokens.index("Paris") + 1,
                                                        "Paris", "LOC")])
    out = post_prediction(post, predicted)
    assert out["text"] == post.text and out["id"] == "a"
    spans = [(e["char_start"], e["char_end"], e["text"]) for e in out["entities"]]
    assert spans == [(10, 23, "Barack  Obama"), (31, 36, "Paris")]  # the post's own characters, spaces kept
    assert all(post.text[s:e] == text for s, e, text in spans)
