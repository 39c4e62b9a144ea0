"""DeepSpeed configs and the docs' multi-GPU commands, checked without a GPU or DeepSpeed.

Neither is on this machine, so nothing here launches a run. Instead each ZeRO config must load
into accelerate's DeepSpeedPlugin, say "auto" only where accelerate fills the value for genie's
loop, and leave the optimizer and scheduler to genie; and every `accelerate launch` line of
docs/scaling-out.md must parse with accelerate's own launcher parser and name a DeepSpeed config,
a genie config and genie keys that exist. A typo there would otherwise surface only on a GPU
cluster.
"""

from __future__ import annotations

import json
import re
import shlex
import string
from pathlib import Path

import pytest
from accelerate.commands.launch import launch_command_parser
from accelerate.utils import DeepSpeedPlugin

from genie.config import load_config
from genie.errors import GenieError

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "scaling-out.md"  # README links it as "Scaling out: multi-GPU and DeepSpeed"
# The "auto" values accelerate fills for genie (accelerate/accelerator.py `_prepare_deepspeed`,
# DeepSpeedPlugin.set_mixed_precision). Not the bucket sizes: accelerate derives those from
# `model.config.hidden_size`, and GenieModel has no `config`.
FILLED = {"train_micro_batch_size_per_gpu", "train_batch_size", "gradient_accumulation_steps",
          "gradient_clipping", "bf16.enabled", "fp16.enabled"}
# Values for the shell variables of the multi-node command (--machine_rank must parse as int).
SHELL = {"NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1"}


def _auto_keys(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _auto_keys(value, f"{prefix}{key}.")
        elif value == "auto":
            yield prefix + key


def _launch_lines() -> list[str]:
    """The `accelerate launch` commands of the scaling-out page's fenced blocks, continuations joined."""
    page = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
    lines = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", page, re.DOTALL):
        lines += [line.strip() for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines()
                  if line.strip().startswith("accelerate launch")]
    return lines


LINES = _launch_lines()


@pytest.mark.parametrize("name, stage", [("zero2", 2), ("zero3", 3)])
def test_zero_config_loads_into_accelerate(name, stage):
    path = REPO / "configs" / "deepspeed" / f"{name}.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    # genie prepares its own AdamW and scheduler; accelerate refuses a second one in the config.
    assert not {"optimizer", "scheduler"} & set(config)
    assert set(_auto_keys(config)) <= FILLED
    assert DeepSpeedPlugin(hf_ds_config=str(path)).zero_stage == stage
    if stage == 3:  # else accelerator.get_state_dict cannot gather the weights to save them whole
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_readme_shows_each_setup():
    assert any("zero2.json" in line and "--num_processes 1 " in line for line in LINES)
    assert any("zero2.json" in line and "--num_processes 8 " in line for line in LINES)
    assert any("zero3.json" in line and "--num_processes 8 " in line for line in LINES)
    assert any("--num_machines 2 " in line for line in LINES)


@pytest.mark.parametrize("line", LINES, ids=[f"command{i}" for i in range(len(LINES))])
def test_readme_launch_command_is_valid(line):
    words = shlex.split(string.Template(line).substitute(SHELL), comments=True)
    try:
        args = launch_command_parser().parse_args(words[2:])
    except SystemExit:
        pytest.fail(f"accelerate launch rejects: {line}")
    assert args.use_deepspeed and (REPO / args.deepspeed_config_file).is_file(), line
    assert args.module and args.training_script == "genie.cli", line
    command, flag, config, *overrides = args.training_script_args
    assert (command, flag) == ("train", "--config") and (REPO / config).is_file(), line
    try:
        cfg = load_config(REPO / config, overrides)
    except GenieError as exc:
        pytest.fail(f"{exc}: {line}")
    # genie hands train.mixed_precision to Accelerator, which then ignores the launcher's flag;
    # the launcher's --gradient_accumulation_steps would override genie's own inside Accelerator.
    assert cfg.train.mixed_precision == args.mixed_precision, line
    assert args.gradient_accumulation_steps is None, line
    if args.num_machines and args.num_machines > 1:  # each node runs the command with its rank
        assert args.deepspeed_multinode_launcher == "standard", line
        assert None not in (args.machine_rank, args.main_process_ip, args.main_process_port), line
        assert args.num_processes % args.num_machines == 0, line
