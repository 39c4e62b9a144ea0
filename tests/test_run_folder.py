"""A run folder never silently mixes two runs: a start whose config, data or process count differ
from the folder's run is refused in one line before any step; the same run continues or, finished,
reprints its own metrics; `train.overwrite=true` replaces a run, keeping it until the new one has a
checkpoint; one run at a time holds the folder; Ctrl-C / SIGTERM name the last checkpoint and the
command that resumes. Replayed as the commands of README and docs/ would be, on a tiny MNER demo."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from docs_pages import pages

from genie.config import load_config
from genie.demo import build_demo
from genie.errors import GenieError
from genie.model.modeling import GenieModel
from genie.tasks import TASKS, get_task
from genie.training.run import train
from genie.training.run_folder import RunFolder, default_output_dir, differences, fingerprint

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("run_folder")]


def genie(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genie.cli", *args], capture_output=True, text=True, **kwargs)


def train_args(out: Path, demo: Path, *extra: str) -> list[str]:
    return ["train", "--config", "configs/mner.yaml", f"train.output_dir={out}", f"data.demo_dir={demo}",
            "data.demo_train_tweets=120", "train.epochs=2", "train.eval_every_epochs=2", *extra]


def printed(stdout: str) -> dict:
    """The metrics `genie train` prints last, after its progress lines."""
    return json.loads(stdout[stdout.index("{\n"):])


def snapshot(folder: Path) -> dict[str, int]:
    """Every file in the folder and when it was last written."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A finished tiny demo run: its folder, its demo, its printed metrics."""
    root = tmp_path_factory.mktemp("run_folder")
    done = genie(*train_args(root / "run", root / "demo"))
    assert done.returncode == 0, done.stderr
    return root / "run", root / "demo", printed(done.stdout)


@pytest.fixture
def run(finished, tmp_path) -> tuple[Path, Path, dict]:
    """A copy of the finished run for a test to start things in."""
    folder, demo, metrics = finished
    shutil.copytree(folder, tmp_path / "run")
    return tmp_path / "run", demo, metrics


def test_the_same_finished_run_reprints_its_metrics_and_touches_nothing(run):
    folder, demo, metrics = run
    before = snapshot(folder)
    again = genie(*train_args(folder, demo))
    assert again.returncode == 0, again.stderr
    assert "this run has finished" in again.stdout
    assert printed(again.stdout) == metrics
    assert snapshot(folder) == before


@pytest.mark.parametrize("change, named", [
    (["train.learning_rate=0.001"], "train.learning_rate: 0.003 -> 0.001"),
    (["target_format=index"], "target_format: \"text\" -> \"index\""),
    (["model.d_model=32"], "model.d_model: 64 -> 32"),
    (["data.demo_train_tweets=100"], "data.demo_train_tweets: 120 -> 100"),
], ids=["learning-rate", "target-format", "model-shape", "data"])
def test_another_run_into_the_folder_is_refused_in_one_line_and_changes_nothing(run, change, named, tmp_path):
    folder, shared, _ = run
    demo = tmp_path / "demo"  # a copy: the refused run builds its demo before the folder refuses it
    shutil.copytree(shared, demo)
    before = snapshot(folder)
    refused = genie(*train_args(folder, demo, *change))
    assert refused.returncode == 2
    message = refused.stderr.strip()
    assert "\n" not in message and message.startswith(f"genie: error: {folder}: holds another run: ")
    assert named in message and "train.output_dir=" in message and "train.overwrite=true" in message
    assert "{" not in refused.stdout  # no metrics, its own or the folder's
    assert snapshot(folder) == before


def test_real_data_after_the_demo_is_refused_and_gets_its_own_default_folder(run, tmp_path):
    """README's sequence: the demo, then real data into the same folder."""
    folder, demo, _ = run
    data = tmp_path / "mner2017"
    shutil.copytree(demo / "mner", data)
    refused = genie(*train_args(folder, demo, f"data.dir={data}", f"features.dir={data}/features"))
    assert refused.returncode == 2 and "holds another run: data.dir: null -> " in refused.stderr
    cfg = load_config("configs/mner.yaml", [f"data.dir={data}"])
    assert default_output_dir(cfg) == "runs/mner-mner2017"
    assert default_output_dir(load_config("configs/mner.yaml")) == "runs/mner"
    assert default_output_dir(load_config("configs/multitask.yaml")) == "runs/multitask"


def test_overwrite_replaces_the_run_and_keeps_the_old_one_until_the_new_has_a_checkpoint(run, monkeypatch):
    folder, demo, old = run
    forward = GenieModel.forward

    def nan_forward(self, *args):  # the new run stops at its first step
        losses = forward(self, *args)
        losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(GenieModel, "forward", nan_forward)
    new = train_args(folder, demo, "train.learning_rate=0.001")[3:]
    with pytest.raises(GenieError, match="NaN"):
        train(load_config("configs/mner.yaml", [*new, "train.overwrite=true"]))
    assert (folder / ".replaced" / "test_metrics.json").is_file() and not (folder / "test_metrics.json").exists()
    monkeypatch.undo()
    done = genie(*train_args(folder, demo, "train.learning_rate=0.001"))  # the new run, started again
    assert done.returncode == 0, done.stderr
    assert not (folder / ".replaced").exists()
    assert json.loads((folder / "run.json").read_text())["config"]["train.learning_rate"] == 0.001
    assert printed(done.stdout) != old


def test_a_second_run_at_once_is_refused_naming_the_holder_and_a_killed_holders_lock_does_not_block(run):
    folder, demo, _ = run
    hold = (f"import time; from genie.training.run_folder import RunFolder; held = RunFolder({str(folder)!r}); held.lock(); "
            "print('locked', flush=True); time.sleep(600)")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = genie(*train_args(folder, demo))
        assert refused.returncode == 2
        assert refused.stderr.strip() == (f"genie: error: {folder}: another genie train (pid {holder.pid}) is running "
                                          "in this folder; wait for it to end, or give this run its own "
                                          "train.output_dir=...")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    again = genie(*train_args(folder, demo))  # the killed holder's lock went with it
    assert again.returncode == 0 and "this run has finished" in again.stdout


def test_sigterm_names_the_last_checkpoint_and_the_command_that_resumes(tmp_path):
    out, demo = tmp_path / "run", tmp_path / "demo"
    args = train_args(out, demo, "train.epochs=40", "train.checkpoint_every_steps=2")
    running = subprocess.Popen([sys.executable, "-m", "genie.cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("step_*")) and time.time() < deadline:
        time.sleep(0.2)
    running.send_signal(signal.SIGTERM)
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 130
    said = [line for line in stderr.splitlines() if line.startswith("genie:")]
    checkpoint = max((out / "checkpoints").glob("step_*"), key=lambda p: int(p.name[5:]))
    assert said == [f"genie: {out}: interrupted; last checkpoint {checkpoint}; resume with: genie {' '.join(args)}"]


def test_the_process_count_is_part_of_the_run(tmp_path):
    """The two-process launch of docs/training.md after a one-process run: a different run, refused."""
    demo = tmp_path / "demo"
    build_demo(demo / "mner", get_task("mner").demo, seed=0, n_train=20)
    cfg = load_config("configs/mner.yaml", [f"data.demo_dir={demo}"])
    files = {"mner/train": demo / "mner" / "train.jsonl"}
    one, two = fingerprint(cfg, files, processes=1), fingerprint(cfg, files, processes=2)
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    assert folder.claim(one, resume=True, overwrite=False) == "new"
    (folder.path / "checkpoints").mkdir()
    assert folder.claim(one, resume=True, overwrite=False) == "resume"
    with pytest.raises(GenieError, match="processes: 1 -> 2; global_batch: 32 -> 64"):
        folder.claim(two, resume=True, overwrite=False)
    assert differences(one, one) == ""
    # A run fingerprinted before a config key existed is the same run with that key at its default.
    older = json.loads((folder.path / "run.json").read_text())
    del older["config"]["train.max_grad_norm"]
    (folder.path / "run.json").write_text(json.dumps(older))
    assert folder.claim(one, resume=True, overwrite=False) == "resume"
    # The same config on other data in the same files (Twitter-2015 converted over Twitter-2017).
    files["mner/train"].write_text(files["mner/train"].read_text().replace("a", "b"))
    with pytest.raises(GenieError, match=r"holds another run: data mner/train: \"[0-9a-f]{16}\" -> "):
        folder.claim(fingerprint(cfg, files, processes=1), resume=True, overwrite=False)


def test_decode_takes_a_run_folder_and_blames_a_bad_override_on_the_command_line(run, tmp_path):
    folder, demo, metrics = run
    test = demo / "mner" / "test.jsonl"
    decoded = genie("decode", "--checkpoint", str(folder), "--input", str(test), "--output", str(tmp_path / "p.jsonl"))
    assert decoded.returncode == 0, decoded.stderr
    scored = genie("evaluate", "--task", "mner", "--gold", str(test), "--pred", str(tmp_path / "p.jsonl"))
    assert json.loads(scored.stdout)["mner"] == metrics["mner"]
    bad = genie("decode", "--checkpoint", str(folder), "--input", str(test), "--output", str(tmp_path / "q.jsonl"),
                "decode.num_beam=4")
    assert bad.returncode == 2
    assert bad.stderr.startswith("genie: error: the command line: unknown config key 'decode.num_beam'")
    empty = genie("decode", "--checkpoint", str(tmp_path), "--input", str(test), "--output", str(tmp_path / "r.jsonl"))
    assert empty.returncode == 2 and "not a genie checkpoint" in empty.stderr and "\n" not in empty.stderr.strip()


def test_make_train_takes_paths_with_spaces_and_names_the_known_tasks(finished, tmp_path):
    _, demo, _ = finished
    data = tmp_path / "my data"
    shutil.copytree(demo / "mner", data)
    made = subprocess.run(["make", "train", "TASK=mner", f"DATA={data}", f"FEATURES={data}/features",
                           f"PY={sys.executable}", f"ARGS=train.epochs=1 train.output_dir={tmp_path}/out"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["data.dir"] == str(data)
    unknown = subprocess.run(["make", "train", "TASK=ner", f"PY={sys.executable}"], capture_output=True, text=True)
    assert unknown.returncode == 2
    known = ", ".join(sorted(TASKS))
    assert f"genie: error: unknown task 'ner' (known: {known})" in unknown.stderr
    assert not Path("runs/ner").exists()  # refused before a run folder is made


def test_a_text_only_run_says_so_and_a_log_gets_few_progress_lines_and_no_tied_weights_warnings(finished):
    """Real data without features.dir, stderr to a pipe as to a log file."""
    folder, demo, _ = finished
    log = genie(*train_args(folder.parent / "logged", demo, f"data.dir={demo}/mner", "train.batch_size=4",
                            "train.checkpoint_every_steps=1"))  # 60 steps, a checkpoint after each
    assert log.returncode == 0, log.stderr
    assert log.stdout.count("text-only run: features.dir is unset") == 1
    metrics = printed(log.stdout)
    assert metrics["text_only"] is True and metrics["features"].startswith("region features: none (text-only")
    assert "Removed shared tensor" not in log.stderr
    assert log.stderr.count("train:") <= 5, log.stderr  # its start and end, and one line per 30 s (60 steps)


def readme_train_commands() -> list[tuple[str, list[str]]]:
    """Every `make train`, `genie train` and `genie.cli train` command in the code blocks of README
    and the docs/ pages (README first, then each page in the order README links it), as (config
    file, overrides) the way the Makefile and the CLI build them."""
    blocks = [block for page in pages() for block in page.read_text(encoding="utf-8").split("```")[1::2]]
    # `make train TASK=gmner        # or mner, mre, fmnerg, jmere`, and `make train TASK=multitask`
    commands = [(str(config), []) for config in sorted(Path("configs").glob("*.yaml"))]
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split(" # ")[0].split("# ->")[0])
            if words[:2] == ["make", "train"]:
                given = dict(word.split("=", 1) for word in words[2:] if "=" in word)
                overrides = [f"{key}={given[var]}" for var, key in
                             (("DATA", "data.dir"), ("FEATURES", "features.dir"), ("MODEL", "model.name")) if var in given]
                overrides += [word for word in given.get("ARGS", "").split() if "=" in word]
                commands.append((f"configs/{given.get('TASK', 'gmner')}.yaml", overrides))
            elif "train" in words and words[words.index("train") - 1] in ("genie", "genie.cli"):
                rest = words[words.index("train") + 1:]
                config = rest[rest.index("--config") + 1]
                overrides = [w for w in rest if "=" in w and not w.startswith("--")]
                if "--model" in rest:
                    overrides.append(f"model.name={rest[rest.index('--model') + 1]}")
                commands.append((config, overrides))
    return commands


def test_readme_train_commands_that_share_a_folder_are_the_same_run():
    """The commands of README and docs/, run in their order, never collide: two that write to one
    folder would compute the same thing (the second says so and reprints the first's metrics)."""
    commands = readme_train_commands()
    assert len(commands) >= 10
    runs: dict[str, tuple[dict, str]] = {}
    for config, overrides in commands:
        cfg = load_config(config, overrides)
        folder = cfg.train.output_dir or default_output_dir(cfg)
        shaping = fingerprint(cfg, {}, 1)["config"]
        if folder in runs:
            assert runs[folder][0] == shaping, f"{runs[folder][1]} and {config} {overrides} share {folder}"
        runs[folder] = (shaping, f"{config} {overrides}")
    assert {"runs/gmner", "runs/gmner-data", "runs/mner-2proc"} <= set(runs)
    # and the docs pages' own: the store, LoRA and DeepSpeed runs
    assert {"runs/gmner-store", "runs/gmner-lora", "runs/gmner-bart-zero2"} <= set(runs)
