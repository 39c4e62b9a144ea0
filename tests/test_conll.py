"""CoNLL reader and BIO decoding: the exact Twitter format, its quirks, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from genie.data_builders.conll import ConllTweet, bio_to_spans, read_conll
from genie.errors import GenieError


def write(tmp_path: Path, text: str | bytes, name: str = "data.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_reads_tweets_with_crlf_odd_tokens_and_no_final_blank_line(tmp_path):
    # U+00A0 and U+200B are real one-character tokens in Twitter-2015/2017; split()/strip() would lose them.
    path = write(tmp_path, "IMGID:17_06_1\r\nRT\tO\r\n\u00a0\tO\r\nNew\tB-LOC\r\n\r\n\r\n"
                           "IMGID:O_2\n\u200b\tO\n&amp\tO\n;\tO\nYork\tI-LOC")
    assert read_conll(path) == [
        ConllTweet("17_06_1", ["RT", "\u00a0", "New"], [["O", "O", "B-LOC"]], 1),
        ConllTweet("O_2", ["\u200b", "&amp", ";", "York"], [["O", "O", "O", "I-LOC"]], 7),
    ]


def test_reads_two_tag_columns(tmp_path):
    path = write(tmp_path, "IMGID:9\nChicago\tB-location\tB-city\nrocks\tO\tO\n\n")
    assert read_conll(path, n_tag_columns=2) == [
        ConllTweet("9", ["Chicago", "rocks"], [["B-location", "O"], ["B-city", "O"]], 1)]


@pytest.mark.parametrize(("tags", "expected"), [
    (["B-PER", "I-PER", "O", "B-LOC"], ([(0, 2, "PER"), (3, 4, "LOC")], 0)),
    (["B-PER", "B-PER"], ([(0, 1, "PER"), (1, 2, "PER")], 0)),
    (["O", "I-LOC", "I-LOC", "O"], ([(1, 3, "LOC")], 1)),  # orphan I- starts an entity
    (["I-ORG"], ([(0, 1, "ORG")], 1)),
    (["B-PER", "I-LOC", "I-LOC"], ([(0, 1, "PER"), (1, 3, "LOC")], 1)),  # type change
    (["O", "O"], ([], 0)),
])
def test_bio_to_spans(tags, expected):
    assert bio_to_spans(tags) == expected


@pytest.mark.parametrize(("text", "line", "words"), [
    ("IMGID:1\nRT\tO\tO\n", 2, "columns"),
    ("IMGID:1\nRT O\n", 2, "columns"),
    ("IMGID:1\nRT\tO\nParis\tB_LOC\n", 3, "B_LOC"),
    ("RT\tO\n", 1, "outside a tweet"),
    ("IMGID:1\nRT\tO\n\nParis\tB-LOC\n", 4, "outside a tweet"),
    ("IMGID:1\nRT\tO\n\nIMGID:2\n\nIMGID:3\nx\tO\n", 4, "IMGID:2 has no tokens"),
    ("IMGID:1\nRT\tO\nIMGID:2\n", 3, "IMGID:2 has no tokens"),
    ("IMGID:1\n\tO\n", 2, "empty token"),
    ("IMGID:\nRT\tO\n", 1, "no image id"),
])
def test_malformed_input_names_file_line_and_problem_on_one_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(GenieError) as info:
        read_conll(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and words in message and "\n" not in message


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"IMGID:1\nRT\tO\nCaf\xe9\tO\n")
    with pytest.raises(GenieError, match=r":3: not UTF-8"):
        read_conll(path)


def test_missing_file(tmp_path):
    with pytest.raises(GenieError, match="no such file"):
        read_conll(tmp_path / "absent.txt")


@pytest.mark.parametrize(("year", "tweets", "orphans"), [
    ("2015", {"train": 4000, "valid": 1000, "test": 3257}, {"train": 186, "valid": 53, "test": 135}),
    ("2017", {"train": 3373, "valid": 723, "test": 723}, {"train": 0, "valid": 0, "test": 0}),
])
def test_real_twitter_mner_counts(shared_datasets, year, tweets, orphans):
    for split in tweets:
        data = read_conll(shared_datasets / "twitter-mner" / "data" / f"twitter{year}" / f"{split}.txt")
        assert len(data) == tweets[split]
        assert sum(bio_to_spans(t.tags[0])[1] for t in data) == orphans[split]


def test_real_whitespace_tokens_are_kept(shared_datasets):
    # valid.txt has 16178 token lines; one token is a lone U+00A0 (IMGID:73309, position 18).
    data = read_conll(shared_datasets / "twitter-mner" / "data" / "twitter2015" / "valid.txt")
    assert sum(len(t.tokens) for t in data) == 16178
    assert next(t for t in data if t.image_id == "73309").tokens[18] == "\u00a0"
