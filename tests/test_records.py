"""The record format: optional fine types and relations, written only when set, validated on read."""

from __future__ import annotations

import json

import pytest

from genie import records
from genie.errors import GenieError
from genie.records import (
    BadLines,
    Entity,
    Record,
    Relation,
    read_records,
    write_records,
)

TOKENS = ["Obama", "joins", "Acme"]


def test_fine_types_and_relations_round_trip_and_are_omitted_when_unset(tmp_path):
    plain = Record("1", "gmner", TOKENS, "x", [Entity(0, 1, "Obama", "PER", [[1, 2, 3, 4]])])
    rich = Record("2", "jmere", TOKENS, "y", [Entity(0, 1, "Obama", "per"), Entity(2, 3, "Acme", "org")],
                  [Relation(0, 1, "member_of")])
    fine = Record("3", "fmnerg", TOKENS, "z", [Entity(0, 1, "Obama", "person", [], "politician")])
    path = tmp_path / "records.jsonl"
    write_records(path, [plain, rich, fine])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert "relations" not in rows[0] and "fine_type" not in rows[0]["entities"][0]
    assert rows[1]["relations"] == [{"head": 0, "tail": 1, "type": "member_of"}]
    assert rows[2]["entities"][0]["fine_type"] == "politician"
    assert read_records(path) == [plain, rich, fine]


@pytest.mark.parametrize("relations, problem", [
    ([{"head": 0, "tail": 2, "type": "member_of"}], "relation 0 head 0 must index the record's 2 entities and tail 2 its 2 entities"),
    ([{"head": 1, "tail": 1, "type": "peer"}], "relation 0 links entity 1 to itself"),
    ([{"head": 0, "tail": 1}], "relation 0 must be an object with 'head', 'tail' and 'type'"),
    ([{"head": True, "tail": 1, "type": "peer"}], "must index"),
    ([{"head": 0, "tail": 1, "type": ""}], "type must be a non-empty string"),
    ({"head": 0}, "'entities' and 'relations' must be lists"),
])
def test_bad_relations_name_the_line_and_problem(tmp_path, relations, problem):
    row = {"id": "1", "task": "jmere", "tokens": TOKENS, "image_id": "x",
           "entities": [{"start": 0, "end": 1, "type": "per"}, {"start": 2, "end": 3, "type": "org"}],
           "relations": relations}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**row, "relations": []}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(GenieError) as info:
        read_records(path)
    assert str(info.value).startswith(f"{path}:2: not a genie record: ") and problem in str(info.value)


def test_fine_type_must_be_a_string(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "1", "task": "fmnerg", "tokens": TOKENS, "image_id": "x",
                                "entities": [{"start": 0, "end": 1, "type": "person", "fine_type": 3}]}) + "\n")
    with pytest.raises(GenieError, match=r":1: not a genie record: entity 0 fine_type must be a string"):
        read_records(path)


def test_bad_lines_are_counted_and_skipped_when_asked(tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = json.dumps(Record("1", "mner", ["a"], "img").to_dict())
    path.write_bytes(f"{good}\n{{broken\n{good}\n".encode() + b"\xff\n" + f"{good}\n".encode())
    with pytest.raises(GenieError, match=r"mixed.jsonl:2: not valid JSON"):
        read_records(path)
    skipped = BadLines()
    assert len(read_records(path, skipped)) == 3
    assert skipped.report() == {"skipped_lines": 2, "first_skipped": f"{path}:2: not valid JSON (Expecting "
                                                                       "property name enclosed in double quotes)"}
    path.write_bytes(f"{good}\n{good}\n{good}\n".encode() + b"\xff\n")
    with pytest.raises(GenieError, match=r"mixed.jsonl:4: not UTF-8 text"):
        read_records(path)


def test_a_line_past_the_limit_is_never_held_whole(tmp_path, monkeypatch):
    """A line longer than `MAX_LINE_BYTES` is one bad line (read past in blocks), and the lines
    after it are read as usual."""
    monkeypatch.setattr(records, "MAX_LINE_BYTES", 200)
    good = json.dumps(Record("1", "mner", ["a"], "img").to_dict())
    path = tmp_path / "long.jsonl"
    path.write_text(f"{good}\n{'x' * 5000}\n{good}\n{'y' * 201}")
    with pytest.raises(GenieError, match=r"long.jsonl:2: not a genie record: a line longer than"):
        read_records(path)
    skipped = BadLines()
    assert len(read_records(path, skipped)) == 2 and skipped.count == 2


@pytest.mark.parametrize("bad, problem", [
    (Record("b", "mner", TOKENS, "x", [Entity(2, 5, "Acme", "ORG")]), "outside"),
    (Record("b", "jmere", TOKENS, "x", [Entity(0, 1, "Obama", "per")], [Relation(0, 3, "member_of")]), "relation"),
    (Record("b", "gmner", TOKENS, "x", [Entity(0, 1, "Obama", "PER", [[1, 2, float("nan"), 4]])]), "box"),
], ids=["span", "relation", "nan-box"])
def test_a_record_that_would_not_read_back_is_never_written(tmp_path, bad, problem):
    """What a builder or decoder writes, genie's reader accepts: checked on write, one line naming
    the record and its line, and the file as it was."""
    path = tmp_path / "records.jsonl"
    path.write_text("old\n")
    good = Record("a", bad.task, TOKENS, "x")
    with pytest.raises(GenieError, match=rf"records.jsonl:2: record 'b' would not read back: .*{problem}") as caught:
        write_records(path, [good, bad])
    assert "\n" not in str(caught.value) and path.read_text() == "old\n"
