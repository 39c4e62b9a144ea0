"""Entity mentions in text targets, named so that the parser finds the very same tokens.

A mention is written as its words. When those words occur more than once in the tweet, writer
and reader agree on a default occurrence, and a mention that is not the default carries its
occurrence, "Pak (2)". Two defaults, chosen by the format:
- sequential (entity lists, each entity once, in text order): the occurrence after the last one
  named, so "Pak ... Pak" as two entities needs no number;
- first (triples, where one entity recurs in several triples): the first occurrence.
Writer and reader follow the same state in the same order, so both round-trip exactly.
"""

from __future__ import annotations

import re


def name_pattern(group: str) -> str:
    """Regex for a written mention: its words in `group`, its occurrence in `group_nth`."""
    return rf"(?P<{group}>.+?)(?: \((?P<{group}_nth>\d+)\))?"


def article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def find_span(tokens: list[str], words: list[str], nth: int) -> tuple[int, int] | None:
    """The `nth` (0-based) occurrence of `words` as a token run in `tokens`, or None."""
    n = len(words)
    seen = 0
    for i in range(len(tokens) - n + 1):
        if tokens[i:i + n] == words:
            if seen == nth:
                return (i, i + n)
            seen += 1
    return None


class Mentions:
    """Writes and reads the mentions of one target; use a fresh one per target."""

    def __init__(self, tokens: list[str], sequential: bool):
        self.tokens = tokens
        self.sequential = sequential
        self.next: dict[tuple[str, ...], int] = {}  # words -> the occurrence after the last one named

    def write(self, span: tuple[int, int]) -> str:
        words = tuple(self.tokens[span[0]:span[1]])
        nth = sum(tuple(self.tokens[i:i + len(words)]) == words for i in range(span[0]))
        default = self._default(words)
        self.next[words] = nth + 1
        return " ".join(words) if nth == default else f"{' '.join(words)} ({nth + 1})"

    def read(self, match: re.Match, group: str) -> tuple[int, int] | None:
        """The span a written mention names, or None when the tweet has no such occurrence."""
        words = tuple(match[group].split())
        nth = int(match[f"{group}_nth"]) - 1 if match[f"{group}_nth"] else self._default(words)
        span = find_span(self.tokens, list(words), nth)
        if span is not None:
            self.next[words] = nth + 1
        return span

    def _default(self, words: tuple[str, ...]) -> int:
        return self.next.get(words, 0) if self.sequential else 0
