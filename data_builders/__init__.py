"""Builders that turn a published dataset release into genie records, one split at a time.

A builder, `(source, split, **options) -> BuildResult`, returns the records plus counts of what
was found, so every quirk of the release (orphan tags, missing xml, ...) is reported instead of
hidden. Each task names its own (`Task.builder`, `Task.builder_options`): `genie convert --task`
reads them from the task registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genie.records import Record


@dataclass
class BuildResult:
    records: list[Record]
    counts: dict[str, int] = field(default_factory=dict)
