"""DeepSpeed configs and the docs' launch commands, checked without launching (the runs themselves
are tests/test_zero_runs.py).

Each ZeRO config must load into accelerate's DeepSpeedPlugin, say "auto" only where accelerate or
genie fills the value, and leave the optimizer and scheduler to genie; and every `accelerate
launch` line of docs/scaling-out.md must parse with accelerate's own launcher parser and name a
DeepSpeed config, a genie config and genie keys that exist. A typo there would otherwise surface
only on a GPU cluster.
"""

from __future__ import annotations

import json
import shlex
import string
from pathlib import Path
from types import SimpleNamespace

import pytest
from accelerate.commands.launch import launch_command_parser
from accelerate.utils import DeepSpeedPlugin
from docs_pages import launch_lines

from genie.config import load_config
from genie.errors import GenieError
from genie.training.distributed import check_world
from genie.training.run import fill_deepspeed_config

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "scaling-out.md"  # README links it as "Scaling out: multi-GPU and DeepSpeed"
# The "auto" values accelerate fills for genie (accelerate/accelerator.py `_prepare_deepspeed`,
# DeepSpeedPlugin.set_mixed_precision), and those genie fills (train.py `_fill_deepspeed_config`:
# the micro batch and clipping). Not the bucket sizes: accelerate derives those from
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


LINES = launch_lines(REPO / "README.md") + launch_lines(PAGE)


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


def _launcher(line: str) -> list[str]:
    words = shlex.split(line)
    return words[:words.index("-m")]


def test_readme_shows_each_setup():
    assert any("zero2.json" in line and "--num_processes 2 " in line for line in LINES)
    assert any("zero3.json" in line and "--num_processes 2 " in line for line in LINES)
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
    assert args.module and args.training_script == "genie.cli", line
    if args.training_script_args[0] == "predict":  # a whole model on each device: no DeepSpeed
        assert not args.use_deepspeed and args.multi_gpu and "--checkpoint" in args.training_script_args, line
        if args.num_machines and args.num_machines > 1:
            assert None not in (args.machine_rank, args.main_process_ip, args.main_process_port), line
        return
    assert args.use_deepspeed and (REPO / args.deepspeed_config_file).is_file(), line
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


@pytest.mark.parametrize("line", [line for line in LINES if "--num_processes 2 " in line])
def test_cpu_commands_are_the_gpu_commands_with_two_processes(line):
    """What the tests run (tests/test_zero_runs.py `launcher`) is the 8-GPU command of the same
    ZeRO stage with two processes and no mixed precision."""
    stage = next(name for name in ("zero2.json", "zero3.json") if name in line)
    gpu = next(other for other in LINES if stage in other and "--num_processes 8 " in other)
    expected = _launcher(gpu)
    for flag, value in (("--num_processes", "2"), ("--mixed_precision", "no")):
        expected[expected.index(flag) + 1] = value
    assert _launcher(line) == expected


def test_genie_fills_batch_and_clipping_and_refuses_a_clipping_that_disagrees():
    cfg = load_config(REPO / "configs" / "gmner.yaml", ["train.batch_size=6", "train.max_grad_norm=0.5"])
    config = json.loads((REPO / "configs" / "deepspeed" / "zero2.json").read_text(encoding="utf-8"))
    plugin = DeepSpeedPlugin(hf_ds_config=dict(config))
    fill_deepspeed_config(plugin, cfg)
    assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == 6
    assert plugin.deepspeed_config["gradient_clipping"] == 0.5  # accelerate's own fill would say 1.0
    with pytest.raises(GenieError, match="clips gradients at 1.0 and train.max_grad_norm is 0.5"):
        fill_deepspeed_config(DeepSpeedPlugin(hf_ds_config={**config, "gradient_clipping": 1.0}), cfg)


def test_processes_that_did_not_join_one_group_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(GenieError, match="2 processes were launched but the run sees 1"):
        check_world(SimpleNamespace(num_processes=1))
    check_world(SimpleNamespace(num_processes=2))
