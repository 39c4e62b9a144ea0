"""The run's Accelerator at the precision its config asks for.

Two things accelerate does not do for us: it drops `fp16` silently on a CPU (there is no CPU fp16
autocast), so a run would train in fp32 under a config that says fp16; and it keeps one mixed
precision per process, so a second run or checkpoint of another precision in the same process
(a notebook, the Python API) would stop with a ValueError. A launched process on CPUs also joins
its process group here (`genie.training.distributed`)."""

from __future__ import annotations

from accelerate import Accelerator
from accelerate.utils import DistributedType

from genie.compat import accelerator_precision_state, forget_accelerator_precision
from genie.errors import GenieError
from genie.training.distributed import check_world, process_group_handlers


def make_accelerator(mixed_precision: str, **kwargs) -> Accelerator:
    """An Accelerator with `mixed_precision` ("no", "bf16" or "fp16", GPU only) and `kwargs`."""
    state = accelerator_precision_state()  # empty until the process's first Accelerator
    if state and state.get("_mixed_precision") != mixed_precision and (
            state.get("distributed_type") != DistributedType.DEEPSPEED):
        # Only the precision part is forgotten: the process group (PartialState) stays.
        forget_accelerator_precision()
    handlers = [*kwargs.pop("kwargs_handlers", []), *process_group_handlers()]
    accelerator = Accelerator(mixed_precision=mixed_precision, kwargs_handlers=handlers, **kwargs)
    check_world(accelerator)
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise GenieError("train.mixed_precision=fp16 needs a GPU (this run is on the CPU); "
                         "use bf16 on a CPU, or no")
    return accelerator
