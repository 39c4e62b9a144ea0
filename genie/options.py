"""Every option that takes one of a few words, defined once: the config keys (`config.choice`),
the command line (`choices=`) and the Python API's checks all read these enums. A member is its
word (`StrEnum`): `TargetFormat.INDEX == "index"`, and configs keep plain strings."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from genie.errors import GenieError

E = TypeVar("E", bound=StrEnum)


class TargetFormat(StrEnum):
    TEXT = "text"  # TIGER / UMIE-style sentences
    INDEX = "index"  # H-Index-style pointers


class RecordFormat(StrEnum):  # `genie convert --format`
    RECORDS = "records"
    INSTRUCTION = "instruction"


class PromptSet(StrEnum):
    TRAIN = "train"  # the paraphrases seen in training
    HELDOUT = "heldout"  # the ones never seen


class OnBadLine(StrEnum):
    ERROR = "error"
    SKIP = "skip"  # counted, reported and left out


class OnMissing(StrEnum):  # an image without region features
    ERROR = "error"
    ZEROS = "zeros"  # counted and reported


class OnBadImage(StrEnum):  # an image a detector cannot read
    SKIP = "skip"
    ERROR = "error"


class OnNonfinite(StrEnum):  # a NaN or inf loss or gradient norm
    STOP = "stop"
    SKIP = "skip"


class InputFormat(StrEnum):  # the lines of `genie predict`'s input
    AUTO = "auto"
    JSONL = "jsonl"
    TEXT = "text"


class DetectorFeatures(StrEnum):  # what a region's vector is
    QUERY = "query"
    ROI = "roi"


class DetectorSize(StrEnum):  # randomly initialised detectors
    TINY = "tiny"
    BASE = "base"


class Sampling(StrEnum):  # multi-task training sets
    PROPORTIONAL = "proportional"
    TEMPERATURE = "temperature"


class PeftMethod(StrEnum):
    NONE = "none"
    LORA = "lora"


class Alignment(StrEnum):  # regularizers
    NONE = "none"
    INFONCE = "infonce"
    CAG = "cag"


class Precision(StrEnum):
    NO = "no"
    FP16 = "fp16"
    BF16 = "bf16"


class Tracker(StrEnum):  # accelerate's trackers; "all": every one installed
    NONE = "none"
    TENSORBOARD = "tensorboard"
    WANDB = "wandb"
    COMET_ML = "comet_ml"
    AIM = "aim"
    MLFLOW = "mlflow"
    CLEARML = "clearml"
    DVCLIVE = "dvclive"
    SWANLAB = "swanlab"
    TRACKIO = "trackio"
    ALL = "all"


def words(options: type[StrEnum]) -> tuple[str, ...]:
    """The option's words, in their order (for `choices=` and messages)."""
    return tuple(member.value for member in options)


def check(options: type[E], value: object, what: str) -> E:
    """`value` as a member of `options`, or one error line naming `what` and the words it takes."""
    try:
        return options(value)
    except ValueError:
        raise GenieError(f"{what} must be one of {', '.join(words(options))}, got {value!r}") from None
