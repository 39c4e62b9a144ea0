"""Reader for the CoNLL-style Twitter files (Twitter-2015/2017, GMNER, FMNERG).

A tweet is an `IMGID:<id>` line, then one `token\\tTAG[\\tTAG]` line per token; tweets are
separated by blank lines. Lines are split on tabs only and never stripped of Unicode
whitespace: the real files have tokens that are a lone U+200B or U+00A0, which `str.split()`
or `str.strip()` would silently drop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from genie.data_builders.files import read_text
from genie.errors import GenieError

_TAG = re.compile(r"O|[BI]-\S+")
_IMGID = "IMGID:"

Span = tuple[int, int, str]


@dataclass
class ConllTweet:
    image_id: str
    tokens: list[str]
    tags: list[list[str]]  # one list per tag column, each as long as `tokens`
    line: int  # line number of the IMGID line, for error messages downstream


def read_conll(path: str | Path, n_tag_columns: int = 1) -> list[ConllTweet]:
    """Read every tweet of a CoNLL file; any malformed line, or an IMGID used twice (record ids
    are built from it), raises GenieError(problem, path, line)."""
    path = Path(path)
    text = read_text(path)

    tweets: list[ConllTweet] = []
    current: ConllTweet | None = None  # the tweet still accepting token lines
    first_line: dict[str, int] = {}
    # Split on "\n" only: str.splitlines() would also break inside tokens on U+2028, U+0085 etc.
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.startswith(_IMGID):
            _check_not_empty(current, path)
            image_id = line[len(_IMGID):]
            if not image_id.strip():
                raise GenieError("IMGID line has no image id", path, lineno)
            if image_id in first_line:
                raise GenieError(f"IMGID:{image_id} already used on line {first_line[image_id]}", path, lineno)
            first_line[image_id] = lineno
            current = ConllTweet(image_id, [], [[] for _ in range(n_tag_columns)], lineno)
            tweets.append(current)
        elif not line.strip(" \t"):
            _check_not_empty(current, path)
            current = None
        elif current is None:
            raise GenieError(f"token line outside a tweet (no IMGID line before it): {line!r:.80}", path, lineno)
        else:
            _add_token(current, line, n_tag_columns, path, lineno)
    _check_not_empty(current, path)
    return tweets


def _add_token(tweet: ConllTweet, line: str, n_tag_columns: int, path: Path, lineno: int) -> None:
    fields = line.split("\t")
    if len(fields) != 1 + n_tag_columns:
        raise GenieError(f"expected {1 + n_tag_columns} tab-separated columns (token and "
                         f"{n_tag_columns} tag{'s' if n_tag_columns > 1 else ''}), got {len(fields)}: "
                         f"{line!r:.80}", path, lineno)
    token, tags = fields[0], fields[1:]
    if not token:
        raise GenieError(f"empty token: {line!r:.80}", path, lineno)
    for column, tag in zip(tweet.tags, tags):
        if not _TAG.fullmatch(tag):
            raise GenieError(f"tag {tag!r:.40} is not O, B-TYPE or I-TYPE", path, lineno)
        column.append(tag)
    tweet.tokens.append(token)


def _check_not_empty(tweet: ConllTweet | None, path: Path) -> None:
    if tweet is not None and not tweet.tokens:
        raise GenieError(f"tweet IMGID:{tweet.image_id} has no tokens", path, tweet.line)


def bio_to_spans(tags: list[str]) -> tuple[list[Span], int]:
    """BIO tags -> ([(start, end_exclusive, type)], orphans).

    An orphan is an I-X that does not continue an entity of type X (after O, at the start, or
    after B-Y/I-Y): the published Twitter-2015 data has them, so it starts a new entity and is
    counted rather than dropped.
    """
    spans: list[Span] = []
    orphans = 0
    start, kind = -1, ""  # the open entity; start -1 = none
    for i, tag in enumerate(tags):
        continues = tag.startswith("I-") and start >= 0 and tag[2:] == kind
        if start >= 0 and not continues:
            spans.append((start, i, kind))
            start = -1
        if tag.startswith("B-") or (tag.startswith("I-") and not continues):
            if tag.startswith("I-"):
                orphans += 1
            start, kind = i, tag[2:]
    if start >= 0:
        spans.append((start, len(tags), kind))
    return spans, orphans
