"""Entity mentions in text targets, named so that the parser finds the very same tokens.

A mention is written as its words. When those words occur more than once in the tweet, writer
and reader agree on a default occurrence, and a mention that is not the default carries its
occurrence, "Pak (2)". Two defaults, chosen by the format:
- sequential (entity lists, each entity once, in text order): the occurrence after the last one
  named, so "Pak ... Pak" as two entities needs no number;
- first (triples, where one entity recurs in several triples): the first occurrence.
Writer and reader follow the same state in the same order, so both round-trip exactly.
`MentionSlot` is the same rule for constrained decoding: only mentions the reader resolves.
"""

from __future__ import annotations

import bisect
import re
from typing import Hashable

from genie.grammar.text import Slot

NUMBERED = re.compile(r".+ \((\d+)\)")  # what the reader takes for a numbered mention, "Pak (2)"
NUMBER_TEXT = "(0123456789)"  # what a tokenizer must write for numbered mentions


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
        nth = match[f"{group}_nth"]
        return self.resolve(tuple(match[group].split(" ")), int(nth) - 1 if nth else None)

    def resolve(self, words: tuple[str, ...], nth: int | None = None) -> tuple[int, int] | None:
        """The span of occurrence `nth` (0-based; None: the default one) of `words`, or None."""
        nth = self._default(words) if nth is None else nth
        span = find_span(self.tokens, list(words), nth)
        if span is not None:
            self.next[words] = nth + 1
        return span

    def _default(self, words: tuple[str, ...]) -> int:
        return self.next.get(words, 0) if self.sequential else 0


class MentionSlot(Slot):
    """A mention as `Mentions` writes it: a run of the tweet's words ("Pak Obama"), numbered or not
    ("Pak (2)"). Its value is the span the reader resolves it to, given the mentions named before
    it (the grammar's memory: `Mentions.next`). Words that `usable` refuses (the tokenizer cannot
    write them) are in no mention; a run of words the reader would take for a numbered mention
    ("A (2)" as the words A and (2)) is written numbered only. With `numbering` false (the
    tokenizer cannot write " (1)"), mentions are written plain only.

    A prefix is kept only while it can still become a mention that resolves: with numbering
    any whole mention can (" (1)" names its first occurrence); without, a mention whose default
    occurrence is used up cannot be written again.

    In a sequential list a numbered mention may only name an occurrence at or after its default
    one ("Pak (1)" after "Pak" is refused): occurrences only move forward, so no span is named
    twice and a prediction is a set."""

    def __init__(self, name: str, tokens: list[str], sequential: bool, usable: list[bool], numbering: bool):
        self.name, self.tokens, self.sequential, self.numbering = name, tokens, sequential, numbering
        self.runs: list[tuple[bytes, list[int], list[int]]] = []  # (text, word starts, word ends) in bytes
        words: list[bytes] = []
        for word, ok in [*zip(tokens, usable), ("", False)]:
            if ok:
                words.append(word.encode())
            elif words:
                starts = [sum(len(w) + 1 for w in words[:k]) for k in range(len(words))]
                self.runs.append((b" ".join(words), starts, [s + len(w) for s, w in zip(starts, words)]))
                words = []
        # What fills this slot when it comes after others in a unit: a word. (Only the first slot
        # of a unit is sequential, entity lists'; in later ones the default occurrence resolves.)
        self.reserve = min((text[s:e] for text, starts, ends in self.runs for s, e in zip(starts, ends)),
                           key=len, default=None)
        self._places: dict[bytes, list[tuple[int, int]]] = {}
        self._rest: dict[tuple[bytes, Hashable], bytes | None] = {}
        self._plain: dict[tuple[bytes, Hashable], tuple[object, Hashable] | None] = {}

    def places(self, read: bytes) -> list[tuple[int, int]]:
        """(run, offset where `read` ends) for every word start `read` can be read from."""
        if read not in self._places:
            if read[:-1] in self._places:  # decoding reads byte by byte: filter the shorter prefix's places
                self._places[read] = [(r, end + 1) for r, end in self._places[read[:-1]]
                                      if self.runs[r][0][end:end + 1] == read[-1:]]
            else:
                self._places[read] = [(r, s + len(read)) for r, (text, starts, _) in enumerate(self.runs)
                                      for s in starts if text.startswith(read, s)]
        return self._places[read]

    def wholes(self, read: bytes):
        """The runs of whole words that start with `read`, shortest first from each place."""
        for r, end in self.places(read):
            text, _, ends = self.runs[r]
            yield from (text[end - len(read):e] for e in ends[bisect.bisect_left(ends, end):])

    def occurrences(self, mention: bytes) -> int:
        """How often `mention` is a run of whole words of the tweet."""
        return sum(end in self.runs[r][2] for r, end in self.places(mention))

    def plain(self, mention: bytes, memory: Hashable) -> tuple[object, Hashable] | None:
        """The span (and memory after it) of `mention` written without a number, if it resolves."""
        own = memory if self.sequential else ()  # in an unordered list the memory is other slots'
        if (mention, own) not in self._plain:
            whole = self.occurrences(mention) > 0  # whole words: whole characters too
            self._plain[mention, own] = (self._resolve(mention.decode(), None, own)
                                         if whole and not NUMBERED.fullmatch(mention.decode()) else None)
        taken = self._plain[mention, own]
        return taken if taken is None or self.sequential else (taken[0], memory)

    def default(self, mention: bytes, memory: Hashable) -> int:
        """The occurrence (0-based) a plain `mention` (whole words) names; numbered ones may not
        name an earlier one."""
        return dict(memory).get(tuple(mention.decode().split(" ")), 0) if self.sequential else 0

    def free(self, mention: bytes, memory: Hashable) -> int:
        """How many occurrences of `mention` a numbered mention may still name."""
        count = self.occurrences(mention)
        return count - self.default(mention, memory) if count else 0

    def writable(self, mention: bytes, memory: Hashable) -> bool:
        """A whole `mention` can still be written, plain or numbered, and resolve."""
        return self.plain(mention, memory) is not None or (self.numbering and self.free(mention, memory) > 0)

    def numbered(self, read: bytes, memory: Hashable) -> list[tuple[bytes, bytes, list[bytes]]]:
        """(mention, what `read` has after it, the endings it can take: " (1)", " (2)"...) for each
        way `read` starts as a numbered mention."""
        out, at = [], read.find(b" ") if self.numbering else -1
        while at > 0:
            count = self.occurrences(read[:at])
            endings = [b" (%d)" % k for k in range(count - self.free(read[:at], memory) + 1, count + 1)]
            if any(ending.startswith(read[at:]) for ending in endings):
                out.append((read[:at], read[at:], endings))
            at = read.find(b" ", at + 1)
        return out

    def extends(self, read: bytes, values: tuple, memory: Hashable) -> bool:
        if any(len(e) > len(tail) and e.startswith(tail)
               for _, tail, endings in self.numbered(read, memory) for e in endings):
            return True
        if self.sequential:  # a longer mention, or " (k)" after this one
            return (any(self.writable(whole, memory) for whole in self.wholes(read) if len(whole) > len(read))
                    or (self.numbering and self.free(read, memory) > 0))
        if self.numbering:  # any longer run of whole words, or " (1)" after this one
            return self.occurrences(read) > 0 or any(end < len(self.runs[r][0]) for r, end in self.places(read))
        return any(len(whole) > len(read) and self.plain(whole, memory) for whole in self.wholes(read))

    def following(self, read: bytes, values: tuple, memory: Hashable) -> set[int]:
        out = {self.runs[r][0][end] for r, end in self.places(read) if end < len(self.runs[r][0])}
        if self.numbering and self.occurrences(read):
            out.add(ord(" "))
        out.update(e[len(tail)] for _, tail, endings in self.numbered(read, memory) for e in endings
                   if len(e) > len(tail))
        return out

    def value(self, read: bytes, values: tuple, memory: Hashable) -> tuple[object, Hashable] | None:
        taken = self.plain(read, memory)
        for mention, tail, endings in self.numbered(read, memory):
            if taken is None and tail in endings:
                taken = self._resolve(mention.decode(), int(tail[2:-1]) - 1, memory)
        return taken

    def rest(self, read: bytes, values: tuple, memory: Hashable) -> bytes | None:
        key = (read, memory if self.sequential else ())  # in an unordered list the memory is other slots'
        if key not in self._rest:
            self._rest[key] = min(self._completions(read, memory), key=len, default=None)
        return self._rest[key]

    def _completions(self, read: bytes, memory: Hashable):
        """Short texts that make `read` a mention that resolves: the rest of each word it may be
        in (numbered " (1)" when its default occurrence is used up), or of a numbered mention."""
        if self.sequential:  # from each place, the shortest mention that can still be written
            for r, end in self.places(read):
                text, _, ends = self.runs[r]
                for word_end in ends[bisect.bisect_left(ends, end):]:
                    whole = text[end - len(read):word_end]
                    if self.writable(whole, memory):
                        numbered = self.plain(whole, memory) is None
                        yield text[end:word_end] + (b" (%d)" % (self.default(whole, memory) + 1) if numbered else b"")
                        break
        elif self.numbering:
            for r, end in self.places(read):
                text, _, ends = self.runs[r]
                word_end = ends[bisect.bisect_left(ends, end)]
                whole = text[end - len(read):word_end]
                yield text[end:word_end] + (b"" if self.plain(whole, memory) else b" (1)")
        else:
            yield from (whole[len(read):] for whole in self.wholes(read) if self.plain(whole, memory))
        for _, tail, endings in self.numbered(read, memory):
            yield from (e[len(tail):] for e in endings if e.startswith(tail))

    def _resolve(self, text: str, nth: int | None, memory: Hashable) -> tuple[object, Hashable] | None:
        mentions = Mentions(self.tokens, self.sequential)
        mentions.next = dict(memory) if self.sequential else {}
        span = mentions.resolve(tuple(text.split(" ")), nth)
        if span is None:
            return None
        return span, tuple(sorted(mentions.next.items())) if self.sequential else memory
