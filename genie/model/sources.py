"""Where a model named by the user comes from: a local folder or the Hugging Face Hub.

transformers reads any name that is not an existing folder as a Hub name, so a mistyped path
(`backbones/minilm-bert2bret`) would spend a minute in network retries and end with an error about
the Hub; and on a machine without network every Hub name does the same. This module decides first,
by one rule, and stops a wrong name in one line:

- a name that exists on disk is a local path;
- a name that is not a legal Hub repo id (`name` or `owner/name`: letters, digits, `-`, `_`, `.`)
  is a local path: it starts with `.`, `/` or `~`, or has more than one `/`, or a space...;
- `owner/name` whose `owner` is a folder here (`backbones/...`, `detectors/...`) is a local path;
- anything else is a Hub name. Unless `HF_HUB_OFFLINE` is set (the local cache only, which fails
  at once), the Hub is asked once, with a short timeout, whether it can be reached at all.
"""

from __future__ import annotations

import functools
from pathlib import Path

import httpx2
from huggingface_hub import constants
from huggingface_hub.utils import HFValidationError, get_session, validate_repo_id

from genie.errors import GenieError

PROBE_SECONDS = 3.0  # a reachable Hub answers in well under this; an unreachable one fails in DNS or connect


def model_source(name: str, what: str = "model") -> str:
    """`name`, checked to be an existing local folder or a Hub name the Hub can be asked for;
    `what` (model, detector, encoder) names it in the error."""
    if Path(name).exists():
        return name
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise GenieError(f"no such local folder (the {what} is a local folder, or a Hub name 'name' or "
                         "'owner/name')", name) from None
    owner = name.split("/")[0]
    if "/" in name and Path(owner).is_dir():
        raise GenieError(f"no such local folder (read as a path, not a Hub name, because ./{owner} is a "
                         f"folder here)", name)
    if not constants.is_offline_mode():
        problem = hub_unreachable(constants.ENDPOINT)
        if problem:
            raise GenieError(f"the {what} '{name}' is not a local folder, and the Hugging Face Hub cannot be "
                             f"reached ({constants.ENDPOINT}: {problem}); give a local save_pretrained folder, "
                             "or set HF_HUB_OFFLINE=1 to load Hub models from the local cache")
    return name


@functools.cache
def hub_unreachable(endpoint: str) -> str | None:
    """Why `endpoint` cannot be reached (None: it answered, whatever the status); asked once per
    process, through huggingface_hub's own client (its proxies and headers)."""
    try:
        get_session().head(endpoint, timeout=PROBE_SECONDS)
    except httpx2.HTTPError as exc:
        return str(exc) or type(exc).__name__
    return None
