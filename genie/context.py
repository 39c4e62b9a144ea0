"""Auxiliary context: text that is not in the post, read by the model after the tweet.

The strongest recent systems add such text: an LLM's explanation of the post (RiVEG), a
description of the image (PGIM, Shap-CA), retrieved knowledge (SCANNER), object captions (MORE).
A record carries it as `context: [{"source", "text"}]`; the source the model reads is

    <instruction> <tweet> | <source>: <text> | <source>: <text>

Entities are only ever found in the tweet: index pointers only point at tweet words, and the
text parser matches mentions against the tweet's tokens alone. When the source is too long,
the context is cut, never the tweet (`ContextUse.fit`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from genie.errors import GenieError
from genie.records import Context, Record, read_lines

MARKER = "|"  # before each context entry; a tokenizer that cannot write it is refused (`check_marker`)


def parse_selection(value: str) -> tuple[str, ...] | None:
    """`data.context`: "all" (None), "none" (no source) or a comma-separated list of sources."""
    if value == "all":
        return None
    if value == "none":
        return ()
    sources = tuple(part.strip() for part in value.split(","))
    if not all(sources) or any(MARKER in s or any(c.isspace() for c in s) for s in sources):
        raise GenieError(f"data.context must be all, none or a comma-separated list of source names, got {value!r}")
    return sources


@dataclass(frozen=True)
class ContextUse:
    """Which of a record's contexts the model reads (`sources`, None: all) and how many tokens
    of them it may read at most."""

    sources: tuple[str, ...] | None = ()
    max_tokens: int = 0

    @classmethod
    def from_config(cls, data) -> ContextUse:
        return cls(parse_selection(data.context), data.max_context_tokens)

    def pick(self, record: Record) -> list[Context]:
        if self.max_tokens == 0:
            return []
        return [c for c in record.context if self.sources is None or c.source in self.sources]

    def text(self, record: Record) -> str:
        return context_suffix(self.pick(record))

    def fit(self, tokenizer, main: list[int], context: str, max_length: int, closing: int) -> tuple[list[int], bool]:
        """`main` (the instruction and tweet, tokenised with special tokens and cut to
        `max_length`) with the context's tokens inserted before its `closing` special tokens
        (`closing_specials`): at most `max_tokens` of them and what room `max_length` leaves.
        Returns the ids and whether the context was cut."""
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        room = max(min(self.max_tokens, max_length - len(main)), 0)
        cut = len(main) - closing
        return main[:cut] + ids[:room] + main[cut:], len(ids) > room


def context_suffix(contexts: list[Context]) -> str:
    """What follows the tweet in the source ("" without context)."""
    return "".join(f" {MARKER} {c.source}: {c.text}" for c in contexts)


def closing_specials(tokenizer) -> int:
    """How many special tokens the tokenizer puts after a text (T5's and BART's </s>: 1)."""
    framed, bare = tokenizer("a")["input_ids"], tokenizer("a", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(framed)) if framed[i:i + len(bare)] == bare)
    return len(framed) - start - len(bare)


def check_marker(tokenizer, name: str) -> None:
    """The marker must reach the model as itself, not as an unknown token."""
    ids = tokenizer(f" {MARKER} ", add_special_tokens=False)["input_ids"]
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise GenieError(f"the tokenizer of {name} cannot write the context marker {MARKER!r}: "
                         "train without context (data.context=none)")


@dataclass
class MergeReport:
    """What `merge_context` did: records that got context, lines whose id matched no record, and
    lines repeating one already merged (dropped)."""

    records_with_context: int = 0
    lines: int = 0
    unmatched: int = 0
    duplicates: int = 0
    first_unmatched: str | None = None

    def to_dict(self) -> dict:
        return {"context_lines": self.lines, "records_with_context": self.records_with_context,
                "unmatched_context_lines": self.unmatched, "duplicate_context_lines": self.duplicates,
                **({"first_unmatched_id": self.first_unmatched} if self.first_unmatched else {})}


def read_context_lines(path: str | Path) -> list[tuple[str, Context]]:
    """`{"id", "source", "text"}` lines; a bad one raises GenieError naming the file and line."""
    def parse(data: object) -> tuple[str, Context]:
        if not isinstance(data, dict) or set(data) != {"id", "source", "text"}:
            raise ValueError('a context line is an object with exactly "id", "source" and "text"')
        if not isinstance(data["id"], (str, int)) or isinstance(data["id"], bool):
            raise ValueError("'id' must be a string")
        return str(data["id"]), Context.from_dict({"source": data["source"], "text": data["text"]}, "the context")

    return read_lines(path, parse, what="a context line")


def merge_context(records: list[Record], lines: list[tuple[str, Context]]) -> tuple[list[Record], MergeReport]:
    """Records with each line's context appended (after any they carry), matched by id."""
    report = MergeReport(lines=len(lines))
    by_id: dict[str, list[Context]] = {r.id: list(r.context) for r in records}
    for record_id, context in lines:
        if record_id not in by_id:
            report.unmatched += 1
            report.first_unmatched = report.first_unmatched or record_id
        elif context in by_id[record_id]:
            report.duplicates += 1
        else:
            by_id[record_id].append(context)
    merged = [replace(r, context=by_id[r.id]) for r in records]
    report.records_with_context = sum(bool(r.context) for r in merged)
    return merged, report


def context_counts(records: list[Record], use: ContextUse) -> dict:
    """How many records the model reads context for, per source."""
    sources = Counter(c.source for r in records for c in use.pick(r))
    return {"with_context": sum(bool(use.pick(r)) for r in records), "sources": dict(sorted(sources.items()))}
