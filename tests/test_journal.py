"""The output journal of `genie decode` / `genie predict` (genie/inference/journal.py): a run
resumes after its last journaled chunk, lines written after it are cut, a journal of another
input is refused unless it finished nothing, and a damaged one says so in one line."""

from __future__ import annotations

from collections import Counter

import pytest

from genie.errors import GenieError
from genie.inference.journal import OutputJournal

KEY = {"input": "posts.jsonl", "input_sha256": "ab", "checkpoint": "best", "settings": []}


def journal(tmp_path, key=KEY) -> OutputJournal:
    return OutputJournal(tmp_path / "preds.jsonl", key)


def rows(*ids: int) -> list[dict]:
    return [{"id": str(i)} for i in ids]


def test_chunks_resume_after_the_last_journaled_one_and_later_lines_are_cut(tmp_path):
    first = journal(tmp_path)
    assert first.resume() == (0, Counter(), {})
    first.start()
    first.add(rows(1, 2), 2, Counter(malformed=1), {"first_missing_image": "a.jpg"})
    first.add(rows(3), 3, Counter(malformed=1, repeated=2), {"first_missing_image": "a.jpg"})
    with open(first.partial, "a") as handle:  # a chunk written, killed before its journal line
        handle.write('{"id": "4"}\n{"id": "5"')
    with open(first.path, "a") as handle:  # and a journal line cut mid-way
        handle.write('{"inputs": 5, "by')
    again = journal(tmp_path)
    assert again.resume() == (3, Counter(malformed=1, repeated=2), {"first_missing_image": "a.jpg"})
    assert first.partial.read_text() == '{"id": "1"}\n{"id": "2"}\n{"id": "3"}\n'
    again.start()  # keeps what is there
    again.add(rows(4, 5), 5, Counter(malformed=1, repeated=2), {})
    again.finish(tmp_path / "preds.jsonl")
    assert (tmp_path / "preds.jsonl").read_text().count("\n") == 5
    assert not first.partial.exists() and not first.path.exists()


def test_another_inputs_journal_is_refused_unless_it_finished_nothing(tmp_path):
    other = journal(tmp_path, {**KEY, "input_sha256": "cd"})
    other.start()
    assert journal(tmp_path).resume() == (0, Counter(), {})  # nothing finished: started over
    assert not other.path.exists() and not other.partial.exists()
    other.start()
    other.add(rows(1), 1, Counter(), {})
    with pytest.raises(GenieError, match="another input, checkpoint or settings"):
        journal(tmp_path).resume()
    assert other.partial.read_text() == '{"id": "1"}\n'  # nothing it wrote is lost


def test_a_damaged_journal_or_a_short_output_is_one_clear_error(tmp_path):
    first = journal(tmp_path)
    first.start()
    first.add(rows(1, 2), 2, Counter(), {})
    first.partial.write_text('{"id": "1"}\n')
    with pytest.raises(GenieError, match="shorter than its journal says"):
        journal(tmp_path).resume()
    first.path.write_text(first.path.read_text() + '["not", "a", "chunk"]\n')
    with pytest.raises(GenieError, match="corrupt line"):
        journal(tmp_path).resume()


def test_only_the_main_process_writes(tmp_path):
    reader = OutputJournal(tmp_path / "preds.jsonl", KEY, write=False)
    reader.start()
    reader.add(rows(1), 1, Counter(), {})
    assert reader.resume() == (0, Counter(), {}) and not list(tmp_path.iterdir())
