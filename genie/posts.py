"""Raw posts (`{"id", "text", "image", "context"}` lines, or one post of plain text per line) as records
to predict, and predictions given back with character offsets into the post's own text."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from genie.errors import GenieError
from genie.images import find_image, image_id
from genie.records import BadLines, Context, Record
from genie.region_extraction import ImageJob
from genie.tweet_tokens import tokenize

POST_KEYS = ("id", "text", "image", "context")


@dataclass
class Post:
    id: str
    text: str
    image: str | None = None  # a path, or an image id / file name inside the images folder
    context: list[Context] = field(default_factory=list)  # text that is not in the post (genie/context.py)

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
        if not isinstance(post_id, (str, int)) or isinstance(post_id, bool):
            raise ValueError("'id' must be a string")
        context = value.get("context", [])
        if not isinstance(context, list):
            raise ValueError("'context' must be a list of {\"source\", \"text\"} objects")
        return cls(str(post_id), text, image, [Context.from_dict(c, f"context {k}") for k, c in enumerate(context)])


def read_posts(path: Path, bad_lines: BadLines | None = None) -> list[Post]:
    """Posts of a file: a line starting with `{` is a JSON post, any other non-blank line is
    the text of one (its id: the line number). A bad line raises GenieError naming file and
    line, or is counted in `bad_lines` and left out."""
    if not path.is_file():
        raise GenieError("no such file", path)
    posts = []
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                post = _parse_line(raw, lineno)
            except ValueError as exc:
                if bad_lines is None:
                    raise GenieError(f"not a post: {exc}", path, lineno) from None
                bad_lines.add(GenieError(f"not a post: {exc}", path, lineno))
                continue
            if post is not None:
                posts.append(post)
    ids = [post.id for post in posts]
    if len(set(ids)) != len(ids):
        raise GenieError(f"post id {next(i for i in ids if ids.count(i) > 1)!r} is used twice", path)
    return posts


def _parse_line(raw: bytes, lineno: int) -> Post | None:
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not line.strip():
        return None
    if not line.lstrip().startswith("{"):
        return Post.parse(line.rstrip("\r\n"), str(lineno))
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    return Post.parse(value, str(lineno))


@dataclass
class PostRun:
    """Posts as records of one task, and the images to extract regions from."""

    task: str
    records: list[Record]
    jobs: list[ImageJob]
    without_image: int
    missing_images: list[str] = field(default_factory=list)
    bad_images: int = 0

    def report(self) -> dict:
        return {"posts": len(self.records), "without_image": self.without_image,
                "missing_images": len(self.missing_images), "bad_images": self.bad_images,
                **({"first_missing_image": self.missing_images[0]} if self.missing_images else {})}


def post_records(posts: list[Post], task: str, images: Path | None, by_id: bool = False) -> PostRun:
    """Records (tokens as the Twitter releases split them) for `task`. `by_id`: images are ids of
    a given region folder; else each is looked up as a file (as given, or inside `images`), and
    one not found is counted and predicted without regions."""
    records, jobs, missing = [], {}, []
    keys: dict[Path, str] = {}
    for post in posts:
        key = ""
        if post.image is not None and by_id:
            key = image_id(Path(post.image))
        elif post.image is not None:
            path = find_image(post.image, images)
            if path is None:
                missing.append(post.image)
            else:
                key = keys.setdefault(path.resolve(), _unique(image_id(path), keys.values()))
                jobs.setdefault(key, ImageJob(key, path, post.image))
        tokens = [token.text for token in tokenize(post.text)]
        records.append(Record(id=post.id, task=task, tokens=tokens, image_id=key, context=post.context))
    return PostRun(task, records, list(jobs.values()), sum(p.image is None for p in posts), missing)


def _unique(key: str, taken) -> str:
    """Two files with one name in different folders get distinct region ids."""
    taken = set(taken)
    candidate, n = key, 1
    while candidate in taken:
        n += 1
        candidate = f"{key}~{n}"
    return candidate


def post_prediction(post: Post, record: Record) -> dict:
    """The predicted record with the post's text and image, and each entity's character offsets
    (`char_start`, `char_end`, end exclusive) and text as they are in the post."""
    spans = tokenize(post.text)
    out = {**record.to_dict(), "text": post.text, "image": post.image}
    for entity in out["entities"]:
        start, end = spans[entity["start"]].start, spans[entity["end"] - 1].end
        entity.update(text=post.text[start:end], char_start=start, char_end=end)
    return out
