"""What a run of several processes needs beyond accelerate's defaults: a process group on CPUs,
a check that the processes did join one, and ZeRO-3's rule that every process makes the same
forward calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import timedelta

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs

from genie.compat import hf_deepspeed_config, skip_deepspeed_shared_memory_op
from genie.errors import GenieError

# How long a process waits for the others at a collective before the run fails (a hang ends).
TIMEOUT = timedelta(minutes=30)


def process_group_handlers() -> list[InitProcessGroupKwargs]:
    """For a process that DeepSpeed's launcher started on a machine without GPUs, the gloo backend
    named explicitly: accelerate otherwise leaves it unnamed, and each process then runs as a world
    of one (every process the main one, no data sharded, no gradient shared). Other CPU launches
    get their backend from accelerate (`ACCELERATE_USE_CPU=1`), or are caught by `check_world`."""
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    if "LOCAL_RANK" not in os.environ or not deepspeed or torch.accelerator.is_available():
        return []
    _skip_shared_memory_op()
    return [InitProcessGroupKwargs(backend="gloo", timeout=TIMEOUT)]


def _skip_shared_memory_op() -> None:
    """DeepSpeed compiles a shared-memory all-reduce with g++ when its CPU process group starts
    (about a minute on a fresh machine). Only its tensor-parallel inference calls it; training
    reduces over gloo. So it is not built."""
    skip_deepspeed_shared_memory_op()


def check_world(accelerator: Accelerator) -> None:
    """The launcher's process count is the run's: processes that did not join one group would
    each train alone on all the data and write the same run folder."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != launched:
        raise GenieError(f"{launched} processes were launched but the run sees {accelerator.num_processes}: they "
                         "did not join one process group (on a machine without GPUs, launch with "
                         "ACCELERATE_USE_CPU=1: docs/training.md, Several processes)")


def is_zero3(accelerator: Accelerator) -> bool:
    plugin = accelerator.state.deepspeed_plugin
    return plugin is not None and plugin.zero_stage == 3


class Lockstep:
    """Under ZeRO-3 each layer's weights are gathered from every process when the layer runs,
    so a process that makes fewer forward calls than the others leaves them waiting for it.
    A decoding loop asks `anyone(going)` once per step; a process whose own search is over goes
    on stepping (the same layers, its results dropped) until no process goes on."""

    def anyone(self, going: bool) -> bool:
        flag = torch.tensor([int(going)])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def lockstep_for(accelerator: Accelerator) -> Lockstep | None:
    """A Lockstep when the processes share partitioned weights (ZeRO-3 with more than one)."""
    return Lockstep() if is_zero3(accelerator) and accelerator.num_processes > 1 else None


def load_weights(accelerator: Accelerator, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """`state` (a whole model's weights, on every process) into the prepared model's module. Under
    ZeRO-3 each process holds a slice of every weight: each weight is gathered, set and
    partitioned again, one at a time (never the whole model at once)."""
    module = accelerator.unwrap_model(model)
    if not is_zero3(accelerator):
        module.load_state_dict(state)
        return
    import deepspeed

    with torch.no_grad():
        for name, parameter in module.named_parameters():
            with deepspeed.zero.GatheredParameters([parameter], modifier_rank=0):
                parameter.copy_(state[name])
        for name, buffer in module.named_buffers():
            buffer.copy_(state[name])


@contextmanager
def full_size(accelerator: Accelerator) -> Iterator[None]:
    """A context in which a model is built whole, not partitioned at creation as transformers does
    under ZeRO-3 (for a copy of the weights that `load_weights` then partitions). accelerate's
    `zero3_init_context_manager(enable=False)` does not stop transformers from partitioning: the
    DeepSpeed config it leaves registered still says stage 3."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        yield
        return
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        set_hf_deepspeed_config(hf_deepspeed_config(plugin))


def gathered(parameter: torch.nn.Parameter) -> AbstractContextManager:
    """A context in which `parameter` is whole, also where ZeRO-3 partitioned it at creation
    (a pretrained backbone loaded under ZeRO-3); nothing to do elsewhere."""
    if hasattr(parameter, "ds_id"):
        import deepspeed

        return deepspeed.zero.GatheredParameters([parameter])
    return nullcontext()
