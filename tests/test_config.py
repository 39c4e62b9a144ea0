"""Typed configs: overrides apply, typos and wrong types fail loudly with the key named; the
commands in the shipped configs' header comments run as pasted."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from genie.cli import build_parser
from genie.config import load_config
from genie.errors import GenieError

REPO = Path(__file__).resolve().parents[1]


def test_task_configs_load_and_overrides_apply(tmp_path):
    cfg = load_config("configs/gmner.yaml", ["train.epochs=3", "model.name=facebook/bart-base",
                                             "train.learning_rate=3e-5", "features.dir=/x"])
    assert (cfg.task, cfg.train.epochs, cfg.model.name, cfg.features.dir) == ("gmner", 3, "facebook/bart-base", "/x")
    assert cfg.train.learning_rate == pytest.approx(3e-5)


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown config key 'train.epoch'"),
    ("train.epochs=three", "config key 'train.epochs' must be int"),
    ("model=tiny", "config key 'model' must be a section"),
    ("novalue", "is not key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(GenieError, match=message):
        load_config("configs/gmner.yaml", [override])


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: gmner\ntrain:\n  epochs: [1\n")
    with pytest.raises(GenieError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("task: gmner\ntrian:\n  epochs: 1\n")
    with pytest.raises(GenieError, match=f"{unknown}: unknown config key 'trian'"):
        load_config(unknown)


def test_an_old_checkpoint_config_is_migrated_and_a_newer_one_refused(tmp_path, monkeypatch):
    """A renamed key (here a made-up `train.lr` -> `train.learning_rate`, schema 1 -> 2) still loads
    from a genie.yaml written before the rename."""
    import genie.config

    def rename_lr(data: dict) -> dict:
        train = dict(data.get("train", {}))
        if "lr" in train:
            train["learning_rate"] = train.pop("lr")
        return {**data, "train": train}

    monkeypatch.setattr(genie.config, "SCHEMA", 2)
    monkeypatch.setattr(genie.config, "MIGRATIONS", {1: rename_lr})
    old = tmp_path / "genie.yaml"
    old.write_text("task: mner\ntrain:\n  lr: 0.25\n")  # no `schema`: written before schemas, version 1
    assert load_config(old).train.learning_rate == 0.25
    newer = tmp_path / "newer.yaml"
    newer.write_text("schema: 3\ntask: mner\n")
    with pytest.raises(GenieError, match="written by a newer genie \\(config schema 3, this genie reads up to 2\\)"):
        load_config(newer)


SCHEDULE = {"task", "train.epochs", "train.batch_size", "train.eval_every_epochs", "decode.max_new_tokens",
            "data.sampling", "model.max_source_length"}


def flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


@pytest.mark.parametrize("config", sorted(Path("configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_defaults_are_the_demo_settings_every_shipped_config_shares(config):
    """A task with no config file of its own (`make train TASK=<new task>`) trains its demo as the
    shipped tasks do: their configs differ from the defaults only in the schedule."""
    defaults, shipped = flat(load_config(None).to_dict()), flat(load_config(config).to_dict())
    assert {key for key in shipped if shipped[key] != defaults[key]} <= SCHEDULE


COMMAND = re.compile(r"^#\s*(?:[^:]*:\s+)?((?:make|genie) .*)$")  # "#   genie ..." or "# Label: make ..."
NOT_PASTEABLE = re.compile(r"[<>|;&`$()#\\]")  # placeholders, redirections, trailing comments, continuations


def header_commands(config: Path) -> list[str]:
    """The commands in the comment lines that open `config`."""
    header = []
    for line in config.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return [found.group(1).strip() for found in map(COMMAND.match, header) if found]


def as_pasted(command: str, cwd: Path) -> list[str]:
    """The words bash gives the command (braces expanded, quotes removed), or the problem."""
    assert not NOT_PASTEABLE.search(command), f"not one line a shell runs as written: {command}"
    shown = subprocess.run(["bash", "-c", f"printf '%s\\0' {command}"], capture_output=True, text=True, cwd=cwd)
    assert shown.returncode == 0, (command, shown.stderr)
    return shown.stdout.split("\0")[:-1]


def check_genie_command(words: list[str], command: str) -> None:
    """genie's parser takes the words, and their config overrides name real keys."""
    try:
        args = build_parser().parse_args(words)
    except SystemExit:
        pytest.fail(f"genie refuses {words} (from: {command})")
    if args.command in ("train", "decode"):
        model = [f"model.name={args.model}"] if getattr(args, "model", None) else []
        load_config(getattr(args, "config", None), [*args.overrides, *model])


@pytest.mark.parametrize("config", sorted(Path("configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_commands_in_a_configs_header_run_as_pasted(config, tmp_path):
    """Each `make` or `genie` command in the comment is one line, with no placeholder a shell reads
    as a redirection nor braces it expands (`--split {train,dev,test}`), that genie (through the
    Makefile) takes."""
    commands = header_commands(config)
    assert commands, f"{config}: no command in its header"
    for command in commands:
        words = as_pasted(command, tmp_path)
        if words[0] == "make":
            made = subprocess.run(["make", "-n", "-s", "-C", str(REPO), *words[1:]], capture_output=True, text=True)
            assert made.returncode == 0, (command, made.stderr)
            words = shlex.split(made.stdout.strip().splitlines()[-1])
            words = words[words.index("genie.cli") + 1:]
        else:
            words = words[1:]
        check_genie_command(words, command)


def test_a_header_command_with_braces_or_placeholders_is_found(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="genie refuses"):
        split = "genie convert --task mner --source data/twitter2015 --split {train,dev,test} --out data/x.jsonl"
        check_genie_command(as_pasted(split, tmp_path)[1:], split)
    with pytest.raises(AssertionError, match="not one line a shell runs"):
        as_pasted("make train TASK=mner FEATURES=<folder of VinVL <IMGID>.jpg.npz>", tmp_path)
    old = tmp_path / "old.yaml"
    old.write_text("# Real data:  genie convert --task mner\n#   make train TASK=mner\ntask: mner\n")
    assert header_commands(old) == ["genie convert --task mner", "make train TASK=mner"]
