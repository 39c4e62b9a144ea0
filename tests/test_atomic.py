"""Outputs are written to a temporary name and renamed: interrupted, a writer leaves the old file
(or, once finished, the new one), never a partial file under the final name; and what is written
gets the modes the umask gives the user's other files."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import T5Config, T5ForConditionalGeneration

from genie.io import atomic_folder, atomic_write
from genie.model.modeling import GenieModel
from genie.records import Record, read_records, write_records
from genie.regions.random_detectors import save_random_detector

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


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    """The process umask set for the test, and put back."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    """Each entry under `folder` (and `folder` itself, as "."): its permission bits."""
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_written_files_and_folders_get_the_umasks_modes(umask, tmp_path):
    """Not the 0600 of mkstemp, nor of safetensors (0.8), which writes every weights file private:
    the model a run saves (best/, through atomic_folder) and a random detector are readable as
    the user's other files are."""
    with atomic_write(tmp_path / "metrics.json") as handle:
        handle.write("{}")
    backbone = T5ForConditionalGeneration(T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1,
                                                   num_heads=2, decoder_start_token_id=0))
    with atomic_folder(tmp_path / "best") as staged:
        GenieModel(backbone, feature_dim=4).save_pretrained(staged)
        (staged / "sub").mkdir(mode=0o700)
        save_file({"x": torch.zeros(1)}, str(staged / "sub" / "extra.safetensors"))
    detector = save_random_detector("detr", tmp_path / "detector")
    file_mode, folder_mode = 0o666 & ~umask, 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == file_mode
    for folder in (tmp_path / "best", detector):
        found = modes(folder)
        assert {"model.safetensors", "config.json"} <= set(found), found
        assert found == {name: folder_mode if (folder / name).is_dir() else file_mode for name in found}, found
    assert "genie_heads.safetensors" in modes(tmp_path / "best")
