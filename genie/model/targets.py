"""Target formats (`target_format: text | index`): how a task's targets meet the tokenizer and
the model. Each turns a record into model inputs and labels, generates, parses what was
generated, and re-encodes a generated sequence so the grounding head can read it."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property

from genie.config import DecodeConfig
from genie.context import ContextUse, check_marker, closing_specials, context_counts
from genie.errors import GenieError
from genie.model.constrained import TextConstraint, TokenText
from genie.model.surface import Surface
from genie.options import TargetFormat, check
from genie.records import Record
from genie.tasks import Parsed, Task

# A source longer than this many characters per window token is tokenized up to a prefix first,
# which must hold WINDOW_MARGIN tokens past the window to be used (`Targets.window_text`).
WINDOW_CHARS_PER_TOKEN, WINDOW_MARGIN = 16, 8


def source_text(task: Task, record: Record, instruction: str = "", context: ContextUse = ContextUse()) -> str:
    """The model's source: the task's text, after the instruction when there is one, before the
    context the run reads (`genie/context.py`)."""
    text = task.source_text(record)
    return (f"{instruction} {text}" if instruction else text) + context.text(record)


def encode_target(tokenizer, text: str, slots: list[tuple[int, int]], max_length: int):
    """Label ids of `text` and, per grounding slot, the decoder positions to pool.

    Decoder position j is fed label j-1 (labels are shifted right), so the states that have
    read a slot's tokens are the label positions of those tokens plus one: we pool those, the
    states fed the phrase, rather than the ones that predict it."""
    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    pools = []
    for begin, end in slots:
        fed = [j + 1 for j, (a, b) in enumerate(offsets) if b > a and a < end and b > begin and j + 1 < len(ids)]
        pools.append(fed)
    return ids, pools


class Targets:
    """What both formats share: the task, the tokenizer, the length limits, the context the run
    reads, the source, and example lengths for length-grouped batching (`genie/training/batching.py`)."""

    def __init__(self, task: Task, tokenizer, max_source_length: int, max_target_length: int,
                 context: ContextUse = ContextUse()):
        self.task, self.tokenizer, self.context = task, tokenizer, context
        self.max_source_length, self.max_target_length = max_source_length, max_target_length

    @cached_property
    def closing_specials(self) -> int:
        """Once per tokenizer, not per record: where the context goes in every source."""
        return closing_specials(self.tokenizer)

    def encode_source(self, record: Record, instruction: str = "",
                      offsets: bool = False) -> tuple[list[int], list, bool]:
        """Source ids, the character offsets of the instruction's and tweet's tokens (`offsets`),
        and whether the context was cut. The context's tokens come after the tweet's and before
        the closing special token; they are cut first, the tweet only past `max_source_length`."""
        enc = self.tokenizer(self.window_text(source_text(self.task, record, instruction)), truncation=True,
                             max_length=self.max_source_length, return_offsets_mapping=offsets)
        ids, cut = enc["input_ids"], False
        extra = self.context.text(record)
        if extra:
            ids, cut = self.context.fit(self.tokenizer, ids, extra, self.max_source_length, self.closing_specials)
        return ids, enc["offset_mapping"] if offsets else [], cut

    def window_text(self, text: str) -> str:
        """`text`, or a prefix of it that holds the same first `max_source_length` tokens: a long
        source (a feed's 10,000-word post) is tokenized only as far as the model reads, so its
        cost stops growing with the post. Exact: the prefix ends at a space, which no token
        crosses, and it is used only when its own tokens already overflow the window."""
        limit = WINDOW_CHARS_PER_TOKEN * self.max_source_length
        cut = text.rfind(" ", 0, limit) if len(text) > limit else -1
        if cut <= 0:
            return text
        probe = self.max_source_length + WINDOW_MARGIN
        overflows = len(self.tokenizer(text[:cut], truncation=True, max_length=probe)["input_ids"]) == probe
        return text[:cut] if overflows else text

    def first_tokens(self, record: Record, instruction: str = "") -> tuple[list[int], dict[int, int]]:
        """Source ids, and the position of the first sub-token of each tweet word the source holds
        (a word past `max_source_length` has none; the context's words are never counted)."""
        ids, offsets, _ = self.encode_source(record, instruction, offsets=True)
        text = source_text(self.task, record, instruction)  # without the context: what the offsets are into
        word_of_char = [-1] * len(text)
        position = len(text) - len(self.task.source_text(record))  # past the instruction
        for w, token in enumerate(record.tokens):
            word_of_char[position:position + len(token)] = [w] * len(token)
            position += len(token) + 1
        first: dict[int, int] = {}
        for j, (a, b) in enumerate(offsets):
            word = next((word_of_char[c] for c in range(a, b) if word_of_char[c] >= 0), -1)
            if word >= 0:
                first.setdefault(word, j)
        return ids, first

    def visible_words(self, record: Record, instruction: str = "") -> int:
        """How many of the tweet's words the model reads (the rest is past `max_source_length`)."""
        first = self.first_tokens(record, instruction)[1]
        return max(first) + 1 if first else 0

    def source_lengths(self, records: list[Record], instructions: list[str] | None = None) -> list[int]:
        instructions = instructions or [""] * len(records)
        lengths = self.token_counts([self.window_text(source_text(self.task, r, i))
                                     for r, i in zip(records, instructions)], self.max_source_length)
        for k, (record, instruction) in enumerate(zip(records, instructions)):
            if self.context.pick(record):
                lengths[k] = len(self.encode_source(record, instruction)[0])
        return lengths

    def context_report(self, records: list[Record], instructions: list[str] | None = None) -> dict:
        """Records the model reads context for, per source, and how many had theirs cut; refuses
        a tokenizer that cannot write the context marker."""
        counts = context_counts(records, self.context)
        if counts["with_context"]:
            check_marker(self.tokenizer, getattr(self.tokenizer, "name_or_path", "") or "this model")
            pairs = zip(records, instructions or [""] * len(records))
            counts["cut"] = sum(self.encode_source(r, i)[2] for r, i in pairs if self.context.pick(r))
        return counts

    def lengths(self, records: list[Record], instructions: list[str] | None = None) -> list[int]:
        """Source plus target tokens of each record (its gold target, every entity groundable)."""
        return [s + t for s, t in zip(self.source_lengths(records, instructions), self.target_lengths(records))]

    def target_lengths(self, records: list[Record]) -> list[int]:
        raise NotImplementedError

    def check_decoding(self, cfg: DecodeConfig) -> None:
        """Refuses decode settings the format cannot follow with this tokenizer (none by default)."""

    def token_counts(self, texts: list[str], max_length: int) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]


class TextTargets(Targets):
    """Targets as text: the backbone's tokenizer, LM head and `generate`."""

    @cached_property
    def surface(self) -> Surface:
        return Surface(self.tokenizer)

    def target_lengths(self, records: list[Record]) -> list[int]:
        texts = [self.surface.escape(self.task.linearize(r).text)[0] for r in records]
        return self.token_counts(texts, self.max_target_length)

    def encode_target(self, text: str, slots: list[tuple[int, int]]) -> tuple[list[int], list[list[int]]]:
        """`encode_target` of the task's text as the tokenizer must read it (`Surface.escape`)."""
        return encode_target(self.tokenizer, *self.surface.escape(text, slots), self.max_target_length)

    def check_decoding(self, cfg: DecodeConfig) -> None:
        """Constrained decoding writes the task's own text byte by byte: a tokenizer that changes it
        (lower case, split punctuation) cannot."""
        if cfg.constrained and self.surface.lossy:
            name = getattr(self.tokenizer, "name_or_path", "") or "this model"
            raise GenieError(f"the tokenizer of {name} does not give text back as written (lower case, split "
                             "punctuation), which constrained decoding needs: set decode.constrained=false, or "
                             "use target_format=index")

    def encode(self, record: Record, groundable: list[bool], instruction: str = "") -> dict:
        """Model inputs and labels; `pools[i]` are the decoder positions of grounding slot i,
        which grounds entity `slot_entities[i]`."""
        target = self.task.linearize(record, groundable)
        labels, pools = self.encode_target(target.text, target.slots)
        return {"input_ids": self.encode_source(record, instruction)[0], "labels": labels, "pools": pools,
                "slot_entities": target.slot_entities}

    @cached_property
    def token_text(self) -> TokenText:
        return TokenText(self.tokenizer)

    def generate(self, model, batch: dict, records: list[Record], cfg: DecodeConfig,
                 encoded=None, lockstep=None, instructions: list[str] | None = None) -> tuple[list[str], list[dict]]:
        """Generated texts, and per record what constrained decoding counted: the tweet's words it
        could not write, rows it left with no allowed token (never, unless genie has a bug), and
        whether the tweet was longer than the model's source (`truncated_posts`). The grammar only
        offers the words the model read: a word past its source window is never written, and the
        grammar's work is bounded by the window, not by the post's length."""
        lengths = batch["attention_mask"].sum(1).tolist()  # a source shorter than the window holds every word
        visible = [len(r.tokens) if length < self.max_source_length else self.visible_words(r, i)
                   for r, i, length in zip(records, instructions or [""] * len(records), lengths)]
        cut = [{"truncated_posts": 1} if n < len(r.tokens) else {} for r, n in zip(records, visible)]
        constraint = None
        if cfg.constrained:
            grammars = [self.task.text_grammar(replace(record, tokens=record.tokens[:n]), self.token_text)
                        for record, n in zip(records, visible)]
            constraint = TextConstraint(self.token_text, grammars, cfg.num_beams, cfg.max_new_tokens)
        sequences = model.generate(batch, cfg.num_beams, cfg.max_new_tokens, [constraint] if constraint else [],
                                   encoded=encoded, lockstep=lockstep)
        # No clean-up of spaces: it would turn a tweet's "Pak ." into "Pak.".
        texts = self.tokenizer.batch_decode(sequences, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        texts = [self.surface.restore(text, self.task, record) for text, record in zip(texts, records)]
        if constraint is None:
            return texts, cut
        return texts, [{"unwritable_words": g.unwritable_words, "dead_ends": d, **c}
                       for g, d, c in zip(constraint.grammars, constraint.dead_ends, cut)]

    def parse(self, output: str, record: Record) -> Parsed:
        return self.task.parse(output, record).as_set()

    def reread(self, output: str, parsed: Parsed) -> tuple[list[int], list[list[int]]]:
        return self.encode_target(output, parsed.slots)


class IndexTargets(Targets):
    """H-Index pointer targets (`genie/tasks/index_format.py`): labels are indices, the source
    carries the position of each word's first sub-token, and decoding is grammar-constrained."""

    def __init__(self, task: Task, tokenizer, max_source_length: int, max_target_length: int,
                 context: ContextUse = ContextUse()):
        super().__init__(task, tokenizer, max_source_length, max_target_length, context)
        self.format = task.index_format
        self.grammar = self.format.grammar

    def target_lengths(self, records: list[Record]) -> list[int]:
        return [min(len(self.format.linearize(r).indices), self.max_target_length) for r in records]

    def encode(self, record: Record, groundable: list[bool], instruction: str = "") -> dict:
        input_ids, starts = self.source(record, instruction)
        target = self.format.linearize(record, groundable)
        labels = target.indices[:self.max_target_length]
        beyond = [i - len(self.grammar.specials) for i in labels if i >= len(self.grammar.specials) + len(starts)]
        if beyond:
            raise GenieError(f"record {record.id!r}: word {beyond[0]} is past the first model.max_source_length "
                             f"({self.max_source_length}) sub-tokens; raise model.max_source_length")
        return {"input_ids": input_ids, "word_starts": starts, "labels": labels,
                "pools": marker_pools(target.slots, len(labels)), "slot_entities": target.slot_entities}

    def source(self, record: Record, instruction: str = "") -> tuple[list[int], list[int]]:
        """Token ids of the source and the position of each tweet word's first sub-token (words
        cut off by `max_source_length` get none, so they cannot be pointed at; the context's
        words are never pointed at)."""
        ids, first = self.first_tokens(record, instruction)
        # A word the tokenizer writes no token for (BERT drops U+FE0F, the emoji variation selector)
        # shares the next word's first sub-token, so later words keep their indices.
        last = max(first, default=-1)
        return ids, [first[w] if w in first else first[min(v for v in first if v > w)] for w in range(last + 1)]

    def generate(self, model, batch: dict, records: list[Record], cfg: DecodeConfig,
                 encoded=None, lockstep=None, instructions: list[str] | None = None) -> tuple[list[list[int]], list[dict]]:
        """Pointer sequences; a word past the source window has no pointer (`source`), counted."""
        sequences = model.generate_indices(batch, self.grammar, cfg.num_beams, cfg.max_new_tokens, encoded=encoded,
                                           lockstep=lockstep)
        visible = batch["word_mask"].sum(1).tolist()
        return sequences, [{"truncated_posts": 1} if n < len(r.tokens) else {} for r, n in zip(records, visible)]

    def parse(self, output: list[int], record: Record) -> Parsed:
        return self.format.parse(output, record).as_set()

    def reread(self, output: list[int], parsed: Parsed) -> tuple[list[int], list[list[int]]]:
        return output, marker_pools(parsed.slots, len(output))


def marker_pools(slots: list[tuple[int, int]], length: int) -> list[list[int]]:
    """Per `<region>` marker at target position m, the decoder positions to pool: m, the state
    that decides the marker, and m + 1, the state fed it (none when the sequence was cut there).

    As in the text format, whose phrase "which is in the image" pools the state fed "is", which
    decides "in" or "not in": the grounding loss then trains the state that makes the in-the-image
    decision to match the entity against the regions. Pooling only the state fed the marker left
    that decision without the signal, and it was learned late or not at all: on the GMNER demo
    (10 epochs), test GMNER F1 58.3 / 51.9 / 64.2 for seeds 42 / 1 / 2, against 93.1 / 79.4 / 91.6
    pooling both, with nearly every box right when the decision was (docs/tasks-and-formats.md, Target formats)."""
    return [[begin, begin + 1] if begin + 1 < length else [] for begin, _ in slots]


def pointer_labels(target_format: str, task: Task) -> int:
    """How many special labels the model's pointer head needs (0: text targets, no head)."""
    check(TargetFormat, target_format, "target_format")
    if target_format == TargetFormat.INDEX and task.index_format is None:
        raise GenieError(f"task {task.name} has no index target format; use target_format=text")
    return len(task.index_format.grammar.specials) if target_format == TargetFormat.INDEX else 0


def make_targets(target_format: str, task: Task, tokenizer, max_source_length: int, max_target_length: int,
                 context: ContextUse = ContextUse()):
    kind = IndexTargets if pointer_labels(target_format, task) else TextTargets
    return kind(task, tokenizer, max_source_length, max_target_length, context)
