"""Option words are defined once (`genie.options`): every config key with choices takes exactly
an enum's words, and a wrong word is one line naming the option and its words."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from genie import config, options
from genie.errors import GenieError

ENUMS = [e for _, e in inspect.getmembers(options, inspect.isclass)
         if issubclass(e, options.StrEnum) and e is not options.StrEnum]


def test_every_config_choice_is_an_enums_words():
    sections = [cls for _, cls in inspect.getmembers(config, inspect.isclass)
                if dataclasses.is_dataclass(cls) and cls.__module__ == config.__name__]
    found = [f for cls in sections for f in dataclasses.fields(cls) if "choices" in f.metadata]
    assert len(found) >= 10
    for f in found:
        assert any(f.metadata["choices"] == options.words(e) for e in ENUMS), f.name
        assert f.default == f.metadata["choices"][0]  # the default is the first word


def test_a_wrong_word_names_the_option_and_its_words():
    assert options.check(options.TargetFormat, "index", "target_format") is options.TargetFormat.INDEX
    with pytest.raises(GenieError, match="^target_format must be one of text, index, got 'pointer'$"):
        options.check(options.TargetFormat, "pointer", "target_format")
