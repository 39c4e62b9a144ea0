"""Constrained decoding for text targets (`decode.constrained`): the decoder writes only text the
task's parser reads whole, as UIE constrains its decoder, through a `LogitsProcessor` for
`generate` over the task's `TextGrammar` (`genie/grammar/text.py`).

The grammar reads bytes; `TokenText` says which bytes each token adds to the decoded text,
read off the tokenizer's own decoder, so the same code serves sentencepiece (T5: "▁Pak" adds
" Pak"), byte-level BPE (BART: a token may hold half of an emoji's bytes) and WordPiece.
"""

from __future__ import annotations

import math
import re

import torch
from tokenizers import decoders
from transformers import LogitsProcessor
from transformers.convert_slow_tokenizer import bytes_to_unicode

from genie.grammar.text import TextGrammar

BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # sentencepiece's byte fallback


class TokenText:
    """Per token id, the bytes it adds to the decoded text (None: special tokens and tokens that
    add nothing, never generated as text), in a byte trie; built once per tokenizer."""

    def __init__(self, tokenizer):
        self.pieces = token_bytes(tokenizer)
        # The specials an encoded target starts and ends with (BART: <s> ... </s>; T5: ... </s>):
        # the decoder is trained to write the first ones, and the end one ends a target.
        ids = tokenizer("a")["input_ids"]
        special = set(tokenizer.all_special_ids)
        text_at = [k for k, i in enumerate(ids) if i not in special]
        self.prefix = tuple(ids[:text_at[0]])
        suffix = ids[text_at[-1] + 1:]
        self.end = suffix[0] if suffix else tokenizer.eos_token_id
        self.trie: dict[int, list] = {}  # byte -> [children, token ids whose text ends here]
        for token, piece in enumerate(self.pieces):
            if piece:
                node = None
                children = self.trie
                for byte in piece:
                    node = children.setdefault(byte, [{}, []])
                    children = node[0]
                node[1].append(token)
        self.single = {piece for piece in self.pieces if piece}
        self._costs: dict[bytes, float] = {}

    def cost(self, data: bytes) -> float:
        """The fewest tokens that write `data` (inf: none do)."""
        if data not in self._costs:
            fewest = [0.0] + [math.inf] * len(data)  # fewest[i]: tokens that write data[:i]
            for start in range(len(data)):
                children = self.trie if fewest[start] < math.inf else {}
                for end in range(start, len(data)):
                    node = children.get(data[end])
                    if node is None:
                        break
                    if node[1]:
                        fewest[end + 1] = min(fewest[end + 1], fewest[start] + 1)
                    children = node[0]
            self._costs[data] = fewest[-1]
        return self._costs[data]

    def writable(self, word: str) -> bool:
        """Whether tokens can write " " + `word` one character (or one byte) at a time: then
        every part of it can be written, in at most one token per byte."""
        return all(char.encode() in self.single or all(bytes((b,)) in self.single for b in char.encode())
                   for char in " " + word)


def token_bytes(tokenizer) -> list[bytes | None]:
    """What each token id adds to the decoded text after other tokens, as bytes."""
    special = set(tokenizer.all_special_ids)
    ids = list(range(len(tokenizer)))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and isinstance(backend.decoder, decoders.ByteLevel):
        byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
        tokens = tokenizer.convert_ids_to_tokens(ids)
        return [None if i in special or not token else
                bytes(byte_of[c] for c in token) if all(c in byte_of for c in token) else token.encode()
                for i, token in zip(ids, tokens)]
    # Anything else: decode each token after an anchor token, so that a decoder's rule for the
    # first token (sentencepiece drops its leading space) does not apply.
    anchor = tokenizer("a", add_special_tokens=False)["input_ids"][-1]
    start = tokenizer.decode([anchor], clean_up_tokenization_spaces=False)
    texts = tokenizer.batch_decode([[anchor, i] for i in ids], clean_up_tokenization_spaces=False)
    out = []
    for i, token, text in zip(ids, tokenizer.convert_ids_to_tokens(ids), texts):
        byte = BYTE_PIECE.fullmatch(token or "")
        if i in special or not text.startswith(start):
            out.append(None)
        elif byte:
            out.append(bytes.fromhex(byte[1]))
        else:
            out.append(text[len(start):].encode() or None)
    return out


class TextConstraint(LogitsProcessor):
    """Masks every token after which the text could not become a whole target within
    `max_new_tokens`. Row r of a batch decodes example r // `num_beams`.

    A row keeps the best `keep` allowed tokens (greedy: 1; beam search: 2 x beams, as many as it
    can use) and masks the rest, which gives exactly what masking every disallowed token would.
    Greedy decoding tries its best 8 tokens first: a trained model's choice is nearly always
    allowed, so a step costs a few automaton steps. Otherwise (and for beam search, which wants
    several tokens per row, more than a grammar inside a fixed phrase allows) every allowed token
    is found through the byte trie, walking only the bytes the grammar can take next: measured on
    the GMNER demo, that is faster for beams than trying the best tokens first."""

    def __init__(self, text: TokenText, grammars: list[TextGrammar], num_beams: int, max_new_tokens: int):
        self.text, self.grammars = text, grammars
        self.num_beams, self.max_new_tokens = num_beams, max_new_tokens
        self.keep = 1 if num_beams == 1 else 2 * num_beams
        self.probe = 8 if num_beams == 1 else 0
        self.after: dict[tuple[int, tuple[int, ...]], dict[int, frozenset]] = {}  # states after each token tried
        self.dead_ends = [0] * len(grammars)  # rows left with no allowed token (a bug if ever > 0)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        keep = torch.zeros_like(scores, dtype=torch.bool)
        best = scores.topk(min(self.probe, scores.shape[1]), dim=1).indices.tolist()
        for row, ids in enumerate(input_ids[:, 1:].tolist()):  # position 0: the decoder start token
            allowed = self.allowed(row // self.num_beams, tuple(ids), best[row])
            if allowed is None:
                keep[row] = True
            else:
                keep[row, allowed] = True
        return scores.masked_fill(~keep, -math.inf)

    def allowed(self, example: int, ids: tuple[int, ...], best: list[int]) -> list[int] | None:
        """The tokens to keep after `ids` (generated so far), tried in the order `best`; None: the
        row has ended, and `generate` only pads it."""
        if self.text.end in ids:
            return None
        prefix = self.text.prefix
        if len(ids) < len(prefix):
            return [prefix[len(ids)]]
        grammar = self.grammars[example]
        states = self._states(example, ids)
        if not states:  # a token masked here that beam search kept at -inf: let it end
            return [self.text.end]
        left = self.max_new_tokens - len(ids) - 1  # tokens after the next one
        first = grammar.following(states)
        found = []
        for token in best:
            piece = self.text.pieces[token]
            if (token == self.text.end or piece and piece[0] in first) and \
                    self._fits(grammar, example, ids, states, token, left):
                found.append(token)
                if len(found) == self.keep:
                    return found
        for token, after in self._every(grammar, example, ids, states).items():
            if token not in found and grammar.to_finish(after) <= left:
                found.append(token)
        if grammar.accepts(states) and self.text.end not in found:
            found.append(self.text.end)
        if not found:
            self.dead_ends[example] += 1
            return [self.text.end]
        return found

    def _states(self, example: int, ids: tuple[int, ...]) -> frozenset:
        k = len(self.text.prefix)
        if ids[:k] != self.text.prefix:
            return frozenset()
        if len(ids) == k:
            return self.grammars[example].start()
        return self.after.get((example, ids[:-1]), {}).get(ids[-1], frozenset())

    def _fits(self, grammar: TextGrammar, example: int, ids: tuple[int, ...], states: frozenset, token: int,
              left: int) -> bool:
        """Whether `token` may come next (a token with no text never does)."""
        if token == self.text.end:
            return grammar.accepts(states)
        after = grammar.read(states, self.text.pieces[token])
        self.after.setdefault((example, ids), {})[token] = after
        return bool(after) and grammar.to_finish(after) <= left

    def _every(self, grammar: TextGrammar, example: int, ids: tuple[int, ...], states: frozenset) -> dict:
        """Every token the grammar allows after `states` (length aside), with the states after it."""
        found = {}
        stack = [(self.text.trie, states)]
        while stack:
            children, current = stack.pop()
            for byte in grammar.following(current) & children.keys():
                below, tokens = children[byte]
                after = grammar.step(current, byte)
                if after:
                    found.update(dict.fromkeys(tokens, after))
                    if below:
                        stack.append((below, after))
        self.after.setdefault((example, ids), {}).update(found)
        return found
