"""Raw posts (`{"id", "text", "image", "context", "objects"}` lines, or one post of plain text per line) as records
to predict, and predictions given back with character offsets into the post's own text."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from genie.errors import GenieError
from genie.options import InputFormat, check
from genie.records import BadLines, Context, GivenObject, Record, iter_lines
from genie.regions.extract import ImageJob
from genie.regions.images import find_image, image_id
from genie.tweet_tokens import tokenize

POST_KEYS = ("id", "text", "image", "context", "objects")


@dataclass
class Post:
    id: str
    text: str
    image: str | None = None  # a path, or an image id / file name inside the images folder
    context: list[Context] = field(default_factory=list)  # text that is not in the post (genie/context.py)
    objects: list[GivenObject] = field(default_factory=list)  # objects of the image given as input

    @classmethod
    def parse(cls, value: object, default_id: str) -> Post:
        """A post from a JSON object or a plain string; ValueError names the problem."""
        if isinstance(value, str):
            value = {"text": value}
        if not isinstance(value, dict):
            raise ValueError(f"expected a post object or a line of text, got {type(value).__name__}")
        unknown = sorted(set(value) - set(POST_KEYS))
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (a post has {', '.join(POST_KEYS)})")
        text, image, post_id = value.get("text"), value.get("image"), value.get("id", default_id)
        if not isinstance(text, str) or not text.strip():
            raise ValueError("'text' must be a non-empty string")
        if image is not None and (not isinstance(image, str) or not image):
            raise ValueError("'image' must be a path or an image id")
        if not isinstance(post_id, (str, int)) or isinstance(post_id, bool) or ("id" in value and post_id == ""):
            raise ValueError("'id' must be a non-empty string")
        context = value.get("context", [])
        if not isinstance(context, list):
            raise ValueError("'context' must be a list of {\"source\", \"text\"} objects")
        objects = value.get("objects", [])
        if not isinstance(objects, list):
            raise ValueError("'objects' must be a list of {\"name\", \"box\"} objects")
        return cls(str(post_id), text, image, [Context.from_dict(c, f"context {k}") for k, c in enumerate(context)],
                   [GivenObject.from_dict(o, f"object {k}") for k, o in enumerate(objects)])


def read_posts(path: Path, bad_lines: BadLines | None = None, input_format: str = "auto",
               text_option: str = "--input-format text") -> tuple[list[Post], int]:
    """Posts of a file (`iter_posts`), and how many blank lines it had (skipped, counted)."""
    counts: Counter = Counter()
    return list(iter_posts(path, bad_lines, input_format, text_option, counts)), counts["blank_lines"]


def iter_posts(path: Path, bad_lines: BadLines | None = None, input_format: str = "auto",
               text_option: str = "--input-format text", counts: Counter | None = None) -> Iterator[Post]:
    """The posts of a file as it is read. Each non-blank line is read by `input_format`
    (`parse_line`; its id defaults to the line number); a blank one is skipped (counted in
    `counts["blank_lines"]`). A bad line, or a second use of an id, raises GenieError naming file and line, or
    is counted in `bad_lines` and left out. `text_option`: how a message says to read every line
    as text. Memory: the ids seen (a feed of a million posts holds a million ids)."""
    check(InputFormat, input_format, "input format")
    lines: dict[str, int] = {}
    read = iter_lines(path, lambda line: parse_line(line, "", input_format, text_option), bad_lines, "a post",
                      text=True)
    for lineno, post in read:
        if post is None:
            if counts is not None:
                counts["blank_lines"] += 1
            continue
        post = post if post.id else replace(post, id=str(lineno))
        if post.id in lines:
            error = GenieError(f"post id {post.id!r} is used twice (first on line {lines[post.id]})", path, lineno)
            if bad_lines is None:
                raise error
            bad_lines.add(error)
            continue
        lines[post.id] = lineno
        yield post


def parse_line(line: str, default_id: str, input_format: str = "auto",
               text_option: str = "--input-format text") -> Post:
    """One post from a non-blank line. `text`: the line is the post's text. `jsonl`: it is a JSON
    post object. `auto`: a line starting with `{` is a JSON post, one starting with `[` that parses
    as JSON is refused (an array is no post), any other is text. ValueError names the problem."""
    stripped = line.strip()
    if input_format == InputFormat.TEXT or (input_format == InputFormat.AUTO and not stripped.startswith(("{", "["))):
        return Post.parse(line.rstrip("\r\n"), default_id)
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        if input_format == InputFormat.AUTO and stripped.startswith("["):
            return Post.parse(line.rstrip("\r\n"), default_id)  # "[BREAKING] ..." is text
        raise ValueError(f"not valid JSON ({exc.msg}); for posts of plain text: {text_option}") from None
    if not isinstance(value, dict):
        raise ValueError(f"a JSON {_json_kind(value)}, not a post object; for posts of plain text: {text_option}")
    return Post.parse(value, default_id)


def _json_kind(value: object) -> str:
    kinds = {list: "array", str: "string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "number")


@dataclass
class PostRun:
    """Posts as records of one task, and the images to extract regions from."""

    task: str
    records: list[Record]
    jobs: list[ImageJob]
    images: list[str | None]  # each post's image as the post names it
    missing_images: list[str] = field(default_factory=list)
    bad_images: list[str] = field(default_factory=list)

    def without_regions(self, has: Callable[[str], bool], missing: bool) -> None:
        """Posts whose image has no regions (`has` says which do) are predicted from their text alone:
        counted here as missing (not in a region folder given) or bad (its extraction failed), and
        their records name no image, so the feature report counts only the images read."""
        for k, record in enumerate(self.records):
            if record.image_id and not has(record.image_id):
                (self.missing_images if missing else self.bad_images).append(self.images[k])
                self.records[k] = replace(record, image_id="")

    def report(self) -> dict:
        return {"posts": len(self.records), "without_image": sum(image is None for image in self.images),
                "missing_images": len(self.missing_images), "bad_images": len(self.bad_images),
                **({"first_missing_image": self.missing_images[0]} if self.missing_images else {}),
                **({"first_bad_image": self.bad_images[0]} if self.bad_images else {})}

    def summary(self, counts: dict, features: str | None) -> dict:
        """What a prediction run reports, the CLI's and the API's alike: the posts and their images,
        the parser's `counts`, and the feature report (`features`: the source's line, None when
        nothing was decoded)."""
        read = any(record.image_id for record in self.records)
        return {**self.report(), **counts,
                "features": features if read and features else "region features: none (no post's image to read)"}


def post_records(posts: list[Post], task: str, images: Path | None, by_id: bool = False,
                 region_id: RegionIds | None = None) -> PostRun:
    """Records (tokens as the Twitter releases split them) for `task`. `by_id`: images are ids of
    a given region folder (one it lacks is counted by `PostRun.without_regions`); else each is
    looked up as a file (as given, or inside `images`), and one not found is counted and
    predicted without regions. `region_id`: the numbering of image files, kept across the
    chunks of one file."""
    records, jobs, missing = [], {}, []
    region_id = region_id or RegionIds()
    for post in posts:
        key, path = image_key(post, images, by_id, region_id)
        if post.image is not None and not by_id and path is None:
            missing.append(post.image)
        elif path is not None:
            jobs.setdefault(key, ImageJob(key, path, post.image))
        tokens = [token.text for token in tokenize(post.text)]
        records.append(Record(id=post.id, task=task, tokens=tokens, image_id=key, context=post.context,
                              objects=post.objects))
    return PostRun(task, records, list(jobs.values()), [post.image for post in posts], missing)


def image_key(post: Post, images: Path | None, by_id: bool, region_id: RegionIds) -> tuple[str, Path | None]:
    """The post's region id ("" for none) and its image file (None unless found as a file)."""
    if post.image is None:
        return "", None
    if by_id:
        return image_id(Path(post.image)), None
    path = find_image(post.image, images)
    return ("", None) if path is None else (region_id(path), path)


class RegionIds:
    """Each image file's region id: its name's id, and `<id>~2`, `<id>~3`, ... for other files of
    the same name in other folders. Constant time a post (a feed of a million posts is a million
    steps, not a million squared)."""

    def __init__(self):
        self.by_path: dict[Path, str] = {}
        self.taken: set[str] = set()
        self.suffix: dict[str, int] = {}  # the last number tried for a name's id

    def __call__(self, path: Path) -> str:
        resolved = path.resolve()
        if resolved not in self.by_path:
            key = base = image_id(path)
            while key in self.taken:  # each number is tried once per name
                self.suffix[base] = self.suffix.get(base, 1) + 1
                key = f"{base}~{self.suffix[base]}"
            self.taken.add(key)
            self.by_path[resolved] = key
        return self.by_path[resolved]


def post_prediction(post: Post, record: Record) -> dict:
    """The predicted record with the post's text and image, and each entity's character offsets
    (`char_start`, `char_end`, end exclusive) and text as they are in the post."""
    spans = tokenize(post.text)
    out = {**record.to_dict(), "text": post.text, "image": post.image}
    for entity in out["entities"]:
        start, end = spans[entity["start"]].start, spans[entity["end"] - 1].end
        entity.update(text=post.text[start:end], char_start=start, char_end=end)
    return out
