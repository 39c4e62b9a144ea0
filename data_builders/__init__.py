"""Builders that turn a published dataset release into genie records, one split at a time.

`BUILDERS[name](source, split)` returns the records plus counts of what was found, so every
quirk of the release (orphan tags, missing xml, ...) is reported instead of hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from genie.records import Record


@dataclass
class BuildResult:
    records: list[Record]
    counts: dict[str, int] = field(default_factory=dict)


# Imported after BuildResult: the builders import it from this package.
from data_builders.fmnerg import build_fmnerg  # noqa: E402
from data_builders.gmner import build_gmner  # noqa: E402
from data_builders.jmere import build_jmere  # noqa: E402
from data_builders.mner import build_mner  # noqa: E402
from data_builders.mre import build_mre  # noqa: E402

BUILDERS: dict[str, Callable[..., BuildResult]] = {
    "fmnerg": build_fmnerg,
    "gmner": build_gmner,
    "jmere": build_jmere,
    "mner": build_mner,
    "mre": build_mre,
}
