"""Every use genie makes of a library's private parts, in one place, each checked against the
versions it was tested with: an upstream release that moves one of them stops genie with one line
naming the package and version, instead of a traceback from deep inside a run.

The tested versions are the ones `constraints.txt` pins (what `make install` installs and the
suite last passed with); setup.cfg's ranges admit them. `make constraints` refreshes the file
after the suite passes on newer releases."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from packaging.version import Version

from genie.errors import GenieError

# package -> (lowest tested, first untested): the private parts below exist in these.
TESTED = {"accelerate": ("1.10", "1.17"), "deepspeed": ("0.19", "0.20"), "transformers": ("5.0", "6.0")}


def require(package: str, use: str) -> None:
    """Stop in one line if `package`'s installed version is outside the tested range for `use`."""
    low, high = TESTED[package]
    try:
        installed = version(package)
    except PackageNotFoundError:
        raise GenieError(f"{use} needs {package} (pip install '{package}>={low},<{high}')") from None
    if not Version(low) <= Version(Version(installed).base_version) < Version(high):
        raise GenieError(f"{use} relies on a private part of {package} tested with {low} <= version < {high}, "
                         f"and {installed} is installed: install a tested one (make install pins them in "
                         f"constraints.txt)")


def accelerator_precision_state() -> dict:
    """accelerate's process-wide AcceleratorState (empty until the first Accelerator): the
    precision it keeps for every later Accelerator in the process."""
    require("accelerate", "switching mixed precision within one process")
    from accelerate.state import AcceleratorState

    return AcceleratorState._shared_state


def forget_accelerator_precision() -> None:
    """Forget accelerate's precision, keeping the process group (PartialState)."""
    require("accelerate", "switching mixed precision within one process")
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


def skip_deepspeed_shared_memory_op() -> None:
    """DeepSpeed's CPU process group builds a shared-memory all-reduce with g++ (`build_shm_op`)
    that only tensor-parallel inference calls: replaced by a no-op."""
    require("deepspeed", "DeepSpeed on CPU processes")
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


def hf_deepspeed_config(plugin):
    """The transformers-side DeepSpeed config an accelerate plugin holds (`dschf`), to set back
    after loading a model without ZeRO-3's partitioning."""
    require("accelerate", "loading the best checkpoint whole under DeepSpeed")
    return plugin.dschf
