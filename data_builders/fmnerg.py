"""Twitter-FMNERG builder: three-column CoNLL (`token\\tcoarse-BIO\\tfine-BIO`, in `txt_fine/` as
released, or `txt/`) + the Pascal-VOC boxes of GMNER v2.0, whose tweets, order and xml it shares.

Boxes link to entities exactly as for GMNER. The two tag columns must give the same spans, and
each fine type must be one of its coarse type's (REFERENCE: 8 coarse, 51 fine); anything else
is an error naming the file and line, since no reading of such a tweet would be right.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from genie.data_builders import BuildResult
from genie.data_builders.conll import ConllTweet, bio_to_spans, read_conll
from genie.data_builders.files import check_split, first_existing
from genie.data_builders.gmner import TypedSpan, link_boxes
from genie.errors import GenieError
from genie.labels import FMNERG_TYPES


def build_fmnerg(source: Path, split: str, xml: Path | None = None) -> BuildResult:
    """Records of one split; `xml` is the GMNER v2.0 `xml/` folder when it is not `<source>/xml`."""
    check_split(split, source)
    txt = first_existing([Path(source) / folder / f"{split}.txt" for folder in ("txt_fine", "txt")],
                         f"FMNERG {split} file")
    xml_dir = Path(xml) if xml else Path(source) / "xml"
    if not xml_dir.is_dir():
        raise GenieError("no folder of xml boxes: FMNERG uses those of GMNER v2.0, "
                         "pass --xml <Twitter10000_v2.0/xml>", xml_dir)
    return link_boxes(read_conll(txt, n_tag_columns=2), xml_dir, split, "fmnerg", partial(_typed_spans, txt))


def _typed_spans(path: Path, tweet: ConllTweet) -> tuple[list[TypedSpan], int]:
    coarse, orphans = bio_to_spans(tweet.tags[0])
    fine, _ = bio_to_spans(tweet.tags[1])
    coarse_marks, fine_marks = _boundaries(coarse, len(tweet.tokens)), _boundaries(fine, len(tweet.tokens))
    if coarse_marks != fine_marks:
        first = next(i for i, (a, b) in enumerate(zip(coarse_marks, fine_marks)) if a != b)
        raise GenieError(f"the coarse and fine tag columns give different entity spans (the coarse column "
                         f"{_READ[coarse_marks[first]]} here, the fine one {_READ[fine_marks[first]]})",
                         path, _line(tweet, first))
    for (start, _, kind), (_, _, fine_kind) in zip(coarse, fine):
        if kind not in FMNERG_TYPES:
            raise GenieError(f"coarse type {kind!r} is not an FMNERG type ({', '.join(FMNERG_TYPES)})",
                             path, _line(tweet, start))
        if fine_kind not in FMNERG_TYPES[kind]:
            raise GenieError(f"fine type {fine_kind!r} is not one of {kind}'s ({', '.join(FMNERG_TYPES[kind])})",
                             path, _line(tweet, start))
    return [(s, e, kind, fine_kind) for (s, e, kind), (_, _, fine_kind) in zip(coarse, fine)], orphans


_READ = {"B": "starts an entity", "I": "continues one", "O": "has none"}


def _boundaries(spans: list[tuple[int, int, str]], n: int) -> list[str]:
    """Per token: B starts an entity, I continues one, O is outside (types ignored)."""
    marks = ["O"] * n
    for start, end, _ in spans:
        marks[start:end] = ["B"] + ["I"] * (end - start - 1)
    return marks


def _line(tweet: ConllTweet, token: int) -> int:
    return tweet.line + 1 + token
