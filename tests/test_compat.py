"""The private parts of accelerate, DeepSpeed and transformers genie uses are reached only through
genie/compat.py, which refuses an untested version in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from genie import compat
from genie.errors import GenieError

REPO = Path(__file__).resolve().parents[1]
PRIVATE = re.compile(r"AcceleratorState\._|\.dschf\b|build_shm_op")


def test_private_parts_are_used_only_in_compat():
    found = [f"{path.relative_to(REPO)}:{n}" for folder in ("genie", "eval", "data_builders", "bench", "tests")
             for path in (REPO / folder).rglob("*.py") if path.name not in ("compat.py", "test_compat.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if PRIVATE.search(line)]
    assert not found, found


def test_an_untested_version_is_one_line(monkeypatch):
    monkeypatch.setitem(compat.TESTED, "accelerate", ("0.1", "0.2"))
    with pytest.raises(GenieError, match=r"private part of accelerate tested with 0.1 <= version < 0.2, and "
                                         r"[0-9.]+ is installed: install a tested one"):
        compat.accelerator_precision_state()


def test_the_installed_versions_are_the_tested_ones():
    for package in compat.TESTED:
        compat.require(package, "this test")


def test_setup_cfg_bounds_every_dependency_above_and_below():
    """Ranges with an upper bound, so a major release upstream cannot break a fresh install."""
    text = (REPO / "setup.cfg").read_text()
    requirements = re.findall(r"^    ([A-Za-z0-9_.-]+)([<>=!~].*)$", text, re.M)
    assert requirements
    unbounded = [name for name, spec in requirements if "<" not in spec or ">=" not in spec]
    assert not unbounded, unbounded
