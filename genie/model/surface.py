"""Text targets through a tokenizer that does not give text back as it was written.

T5's sentencepiece and BART's byte-level BPE decode a target to the very text they encoded. An
uncased WordPiece (BERT, MiniLM) does not: it lower-cases, puts spaces around punctuation
("Obama's #Paris" comes back as "obama ' s # paris"), and reads "[SEP]", genie's clause separator,
as its own special token (which is also where the decoder stops). Targets stay in the task's own
text, which its linearizer writes and its parser reads, so genie
- writes a tokenizer's special-token names in a target split up ("[ SEP ]"), so that they are
  text the decoder can write and never end a target (`escape`); and
- reads a generated text back into the task's text (`restore`): runs of written words that spell a
  fixed phrase of the task (" is a person", ", which is in the image", " [SEP] ", " (2)") become that
  phrase, and each run between phrases becomes the tweet's words it spells ("obama ' s" ->
  "Obama's"); a run that spells none is kept, and the parser counts it unmatched.
A tokenizer that gives text back unchanged skips both."""

from __future__ import annotations

import re

from genie.records import Record
from genie.tasks import Task
from genie.tasks.mentions import MentionSlot

# Case and punctuation, what a lossy tokenizer changes; a probe with a character the tokenizer
# does not know (a tokenizer genie trained on tweets without a capital A) tells nothing.
PROBES = ("Ab #Cd", "RT @user")


class Surface:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.lossy = any(self._changes(probe) for probe in PROBES)
        names = sorted({t for t in tokenizer.all_special_tokens if len(t) > 1}, key=len, reverse=True)
        self.specials = re.compile("|".join(map(re.escape, names))) if names else None
        self._keys: dict[str, str] = {}
        self._phrases: dict[tuple[str, int], dict[str, str]] = {}

    def _changes(self, probe: str) -> bool:
        """Whether the tokenizer gives `probe` back changed (a byte-level BPE's leading space aside)."""
        if self.tokenizer.unk_token_id in self.tokenizer(probe, add_special_tokens=False)["input_ids"]:
            return False
        return self.written(probe).strip() != probe

    def written(self, text: str) -> str:
        """`text` as the tokenizer gives it back."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def key(self, text: str) -> str:
        """What two texts written alike share: the written form without its spaces."""
        if text not in self._keys:
            self._keys[text] = "".join(self.written(self.escape(text)[0]).split())
        return self._keys[text]

    def escape(self, text: str, slots: list[tuple[int, int]] = ()) -> tuple[str, list[tuple[int, int]]]:
        """`text` with the names of the tokenizer's special tokens split ("[SEP]" -> "[ SEP ]"), and
        the character `slots` moved with it."""
        if self.specials is None:
            return text, list(slots)
        out, shifts, at = [], [], 0
        for match in self.specials.finditer(text):
            name = match[0]
            split = f"{name[0]} {name[1:-1]} {name[-1]}" if len(name) > 2 else " ".join(name)
            out += [text[at:match.start()], split]
            shifts.append((match.end(), 2 if len(name) > 2 else 1))
            at = match.end()
        out.append(text[at:])

        def moved(position: int) -> int:
            return position + sum(extra for end, extra in shifts if end <= position)

        return "".join(out), [(moved(begin), moved(end)) for begin, end in slots]

    def restore(self, written: str, task: Task, record: Record) -> str:
        """A generated text read back into the task's text for `record` (unchanged when lossless).

        The written text is read without its spaces, since a tokenizer may add or drop them around
        punctuation; a phrase is read only where a written word starts and ends."""
        if not self.lossy:
            return written
        phrases = self.phrases(task, record)
        chars, starts, spaced = [], [], True  # starts[i]: a written word may start at chars[i]
        for char in written:
            if char.isspace():
                spaced = True
                continue
            chars.append(char)
            starts.append(spaced or not char.isalnum())
            spaced = False
        text, out, run, i, after = "".join(chars), [], 0, 0, 0
        starts.append(True)
        while i < len(text):
            found = next((key for key in phrases if starts[i] and text.startswith(key, i)
                          and (starts[i + len(key)] or not key[-1].isalnum())), None)
            if found is None:
                i += 1
                continue
            mention, after = self._mention(text[run:i], record, after)
            out += [mention, phrases[found]]
            i = run = i + len(found)
        out.append(self._mention(text[run:], record, after)[0])
        return "".join(out).strip()

    def phrases(self, task: Task, record: Record) -> dict[str, str]:
        """The task's fixed texts for `record` by key, longest first: its grammar's options, its
        separator, and the occurrence numbers " (1)", " (2)", ... of mentions. They depend on the
        task and the tweet's length only."""
        memo = (task.name, len(record.tokens))
        if memo not in self._phrases:
            grammar = task.text_grammar(record)
            texts = {text.decode() for slot in grammar.slots if not isinstance(slot, MentionSlot)
                     for text in slot.options}
            texts |= {grammar.separator.decode(), *(f" ({k})" for k in range(1, len(record.tokens) + 1))}
            keyed = {self.key(text): text for text in texts}
            self._phrases[memo] = {key: keyed[key] for key in sorted(keyed, key=len, reverse=True)}
        return self._phrases[memo]

    def _mention(self, wanted: str, record: Record, after: int) -> tuple[str, int]:
        """The tweet's words that `wanted` (written, without spaces) spells, and where they end.
        Words spelled alike but cased differently ("One Direction", "one direction") cannot be
        told apart once written: the first span at or after `after` (where the last mention
        ended) is taken, as entity lists name entities in text order, else the first span.
        `wanted` itself when no span spells it (the parser will not find it)."""
        if not wanted:
            return "", after
        tokens, spans = record.tokens, []
        for i in range(len(tokens)):
            if not self.key(tokens[i]):
                continue  # a word the tokenizer drops (an emoji it reads as unknown) starts no span
            for j in range(i + 1, len(tokens) + 1):
                spelled = self.key(" ".join(tokens[i:j]))
                if spelled == wanted and self.key(tokens[j - 1]):
                    spans.append((i, j))
                if not wanted.startswith(spelled):
                    break
        if not spans:
            return wanted, after
        i, j = next((span for span in spans if span[0] >= after), spans[0])
        return " ".join(tokens[i:j]), j
