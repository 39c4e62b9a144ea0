"""Outputs are written to a temporary name and renamed: interrupted, a writer leaves the old file
(or, once finished, the new one), never a partial file under the final name."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from genie.io import atomic_folder
from genie.records import Record, read_records, write_records

SLOW_WRITER = """
import sys, time
from genie.records import Record, write_records

def records():
    for k in range(1000):
        if k == 10:
            print("writing", flush=True)
        time.sleep(0.01)
        yield Record(str(k), "mner", ["new"], "img")

write_records(sys.argv[1], records())
"""


def test_a_writer_killed_mid_file_leaves_the_old_file(tmp_path):
    out = tmp_path / "preds.jsonl"
    old = [Record("old", "mner", ["old"], "img")]
    write_records(out, old)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_records(out) == old
    leftovers = [p for p in tmp_path.iterdir() if p != out]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".preds.jsonl.")  # the unfinished temporary


def test_a_writer_that_fails_mid_file_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "preds.jsonl"
    old = [Record("old", "mner", ["old"], "img")]
    write_records(out, old)

    def failing():
        yield Record("1", "mner", ["new"], "img")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_records(out, failing())
    assert read_records(out) == old and [p.name for p in tmp_path.iterdir()] == ["preds.jsonl"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    """`atomic_folder` (checkpoints, best/, the tokenizer, the demo's features, feature stores)."""
    final = tmp_path / "best"
    final.mkdir()
    (final / "weights").write_text("old")
    (tmp_path / ".best.tmp").mkdir()  # left by a killed build: cleared, not mixed in
    (tmp_path / ".best.tmp" / "stale").write_text("x")
    with pytest.raises(RuntimeError), atomic_folder(final) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("failed mid-save")
    assert [p.name for p in tmp_path.iterdir()] == ["best"] and (final / "weights").read_text() == "old"
    with atomic_folder(final) as tmp:
        assert list(tmp.iterdir()) == []
        (tmp / "weights").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["best"] and [p.name for p in final.iterdir()] == ["weights"]
    assert (final / "weights").read_text() == "new"
