"""A raw tweet, as a user pastes it, split into tokens the way the Twitter NER releases were.

genie's models learn from the token lists of Twitter-2015, Twitter-2017, Twitter-GMNER and MNRE,
so a new tweet must be split the same way before a model reads it; each token keeps its
character offsets, so that a predicted entity (a run of tokens) is given back as a span of the
original string.

Kept as one token: a URL (up to the next space, so also a truncated `http://t.co…`), an
@mention (also `.@user`, `RT@user`), a #hashtag, a $cashtag, an emoticon (`:)`, `:-(`, `;D`),
a number with separators (`3.5`, `10,000`, `7:30pm`), an abbreviation (`U.S.`, `p.m.`, `Mr.`,
`vs.`, an initial `J.`), an ellipsis (`...`), a word with inner hyphens, slashes or `&`
(`well-known`, `w/o`, `AT&T`, `&amp`) and a word cut by Twitter's `…`. Split off: punctuation
(also the `;` of `&amp;`), brackets and quotes, the clitics `n't` `'s` `'m` `'re` `'ve` `'ll` `'d`
(`don't` -> `do n't`), and every other symbol, each emoji code point included (a skin-tone
modifier or the variation selector U+FE0F is a token of its own, as in the releases).

Where the releases disagree, the tokens a release keeps whole are kept whole: MNRE has `U.S.`,
`...`, `'s`, `do n't` and `10,000` where Twitter-2015 has `U . S .`, `. . .`, `' s`, `don ' t` and
`10 , 000`; Twitter-2017 keeps a comma on a number (`May 30,`), which is split here as in the
three others. Whitespace (any `str.isspace()` character, NBSP included) is never part of a token.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_ABBREVIATIONS = ("Mr|Mrs|Ms|Dr|Jr|Sr|St|Mt|vs|Rev|Rep|Sen|Gov|Gen|Prof|Co|Corp|Inc|Ltd|Bros|"
                  "Jan|Feb|Aug|Sept|Oct|Nov|Dec")
_CLITIC = r"(?:[sS]|m|re|ve|ll|d)\b"  # what follows the apostrophe of 's 'm 're 've 'll 'd

_TOKEN = re.compile(rf"""
    https?:\S+ | www\.\S+                                       # URL, up to the next space
  | (?<!\w) (?:[:;=]-?(?:\)+|\(+|[DPpOo/]) | :'[()] | \):) (?!\w)  # emoticon
  | [A-Za-z](?:\.[A-Za-z])+\b\.?                               # U.S., p.m., a.k.a
  | (?:{_ABBREVIATIONS}|[A-Z])\.                                # Mr., vs., an initial: J.
  | \w*\d(?:[.,:]\d+)+\w*                                       # 3.5, 10,000, 7:30pm, v2.0
  | \w+(?=n['’]t\b) | n['’]t\b | ['’]{_CLITIC}                  # do n't, it 's
  | (?:(?<![-—/*~+&])[-—/*~+&]+)? (?:\.?@|\#|\$(?=[A-Za-z]))?     # word: leading symbols (one
                                                                #   run, for linear time), @ # $
    \w+ (?:(?:[-—/*~&;@#]+|['’](?!{_CLITIC}))\w+)*              #   inner - / & ' (not a clitic)
    (?:…|[-—/*~+$°]*)                                           #   trailing: cut…, w/, ESPN+
  | \.{{2,}} | ([-/*|~=']) \1+                                  # ..., --, //, ||
  | \S                                                          # any other character
""", re.VERBOSE)


class Token(NamedTuple):
    text: str  # always original[start:end]
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """The tokens of `text` in order, with their offsets; only whitespace lies between them."""
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
