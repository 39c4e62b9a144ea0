"""DeepSpeed ZeRO-2 and ZeRO-3, run for real: two CPU processes over gloo.

Each run is docs/scaling-out.md's own 8-GPU command with two processes, `--mixed_precision no`
(one run keeps bf16) and `--main_process_port 0` (tests run side by side), in a
subprocess with a timeout: a hang (ZeRO-3 waiting for a process that made fewer forward calls)
fails the test instead of stalling the suite. ZeRO-3 runs set `stage3_param_persistence_threshold`
to 0, or every weight of a tiny model would stay whole on every process and hide what ZeRO-3 does.

The reference is one plain process at the same global batch (batch 8, gradient accumulation 2; as
in test_distributed.py). What can be compared exactly, as measured:
- ZeRO-2 without clipping: every step's loss and every prediction are bitwise those of the
  reference. Halving a gradient is exact, and so is adding two.
- With clipping, DeepSpeed's global gradient norm adds the squares in another order, so losses
  drift at the 1e-7 level (ZeRO-3 also without clipping). The ZeRO-3 runs are kept to 40 steps,
  where the drift stays below 1e-6 and every prediction is still the reference's; longer runs
  amplify it (after 240 steps the dev F1 of the two differs by 1-3 points either way). The text
  run under ZeRO-3 does not clip: with clipping its drift reached 1.7e-4 by step 15.
- Dropout (of the model, of LoRA) is 0: two processes draw their masks from two copies of one
  seeded generator, one process from one stream, so masks differ by design.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from docs_pages import launch_lines
from metrics_lines import logged
from safetensors.torch import load_file

from genie.config import load_config
from genie.model.modeling import GenieModel
from genie.records import read_records
from genie.tasks import get_task
from genie.training.run_setup import build_model, load_task_data

pytest.importorskip("deepspeed", reason="DeepSpeed is part of `make install`")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("zero")]

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600  # seconds for one run; the longest takes about 40
# MNER with text targets and the InfoNCE alignment term: 240 steps, learning to dev F1 about 65.
TEXT = ["--config", "configs/mner.yaml", "data.demo_train_tweets=640", "train.batch_size=8", "train.epochs=7",
        "train.max_steps=240", "train.eval_every_epochs=4", "train.learning_rate=0.005", "model.dropout=0.0",
        "regularizers.alignment=infonce", "decode.batch_size=29", "decode.max_new_tokens=40",
        "train.max_grad_norm=0"]
# GMNER with index targets (pointer head, grounding head, the grammar's search), the alignment term
# and clipping at 1.0: 2 epochs of 20 steps, a checkpoint every 5.
INDEX = ["--config", "configs/gmner.yaml", "target_format=index", "data.demo_train_tweets=320", "train.batch_size=8",
         "train.epochs=2", "train.eval_every_epochs=1", "train.learning_rate=0.005", "model.dropout=0.0",
         "regularizers.alignment=infonce", "decode.batch_size=50", "train.checkpoint_every_steps=5"]
PLAIN = [sys.executable, "-m", "genie.cli", "train"]


def launcher(stage: str, ds_config: Path) -> list[str]:
    """The scaling-out page's 8-GPU command for `stage`, up to the genie command, for two CPU processes."""
    line = next(line for line in launch_lines(REPO / "docs" / "scaling-out.md")
                if f"{stage}.json" in line and "--num_processes 8 " in line)
    words = shlex.split(line)
    words = words[2:words.index("-m")]  # after `accelerate launch`
    for flag, value in (("--num_processes", "2"), ("--mixed_precision", "no"), ("--deepspeed_config_file", str(ds_config))):
        words[words.index(flag) + 1] = value
    return [sys.executable, "-m", "accelerate.commands.launch", *words, "--main_process_port", "0",
            "-m", "genie.cli", "train"]


def environment(root: Path) -> dict:
    # No user accelerate config is read; one torch thread per process.
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(root / "hf")}


def train(prefix: list[str], out: Path, demo: Path, args: list[str], *overrides: str) -> str:
    done = subprocess.run([*prefix, *args, f"train.output_dir={out}", f"data.demo_dir={demo}", *overrides], cwd=REPO,
                          env=environment(out.parent), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout + done.stderr


def losses(out: Path) -> list[dict]:
    return [line for line in logged(out) if "loss" in line]


def assert_losses_match(expected: Path, got: Path, tolerance: float) -> None:
    a, b = losses(expected), losses(got)
    assert [line["step"] for line in a] == [line["step"] for line in b] == list(range(1, len(a) + 1))
    for x, y in zip(a, b):
        assert x.keys() == y.keys() and x["lr"] == y["lr"], (x, y)
        for term in (key for key in x if key.endswith("loss")):
            assert abs(x[term] - y[term]) <= tolerance * abs(x[term]), (term, x, y)


def metrics(out: Path) -> dict:
    return json.loads((out / "test_metrics.json").read_text())


def zero3_config(root: Path) -> Path:
    config = json.loads((REPO / "configs" / "deepspeed" / "zero3.json").read_text())
    config["zero_optimization"]["stage3_param_persistence_threshold"] = 0
    path = root / "zero3.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zero")


@pytest.fixture(scope="module")
def index_runs(root) -> dict[str, Path]:
    """The GMNER index recipe: one plain process, and ZeRO-3 on two."""
    demo = root / "demo_gmner"
    log = train(launcher("zero3", zero3_config(root)), root / "zero3", demo, INDEX)
    assert "40 steps, 2 process(es)" in log
    reference = train(PLAIN, root / "plain_index", demo, INDEX, "train.gradient_accumulation_steps=2")
    assert "40 steps, 1 process(es)" in reference
    return {"demo": demo, "zero3": root / "zero3", "plain": root / "plain_index"}


def test_zero2_two_processes_train_bitwise_like_one(root):
    demo = root / "demo_mner"
    log = train(launcher("zero2", REPO / "configs" / "deepspeed" / "zero2.json"), root / "zero2", demo, TEXT)
    reference = train(PLAIN, root / "plain_text", demo, TEXT, "train.gradient_accumulation_steps=2")
    assert "240 steps, 2 process(es)" in log and "240 steps, 1 process(es)" in reference

    assert_losses_match(root / "plain_text", root / "zero2", 0.0)
    assert [line for line in logged(root / "zero2") if "dev" in line] == [
        line for line in logged(root / "plain_text") if "dev" in line]
    assert metrics(root / "zero2") == metrics(root / "plain_text")
    assert read_records(root / "zero2" / "test_predictions.jsonl") == read_records(
        root / "plain_text" / "test_predictions.jsonl")
    assert metrics(root / "zero2")["dev_best"] >= 55 and metrics(root / "zero2")["mner"]["f1"] >= 55
    # Each process saved its own shard of the optimizer state.
    checkpoint = next((root / "zero2" / "checkpoints").glob("step_*"))
    assert len(list(checkpoint.rglob("*optim_states.pt"))) == 2


def test_zero3_two_processes_train_and_decode_like_one(index_runs):
    zero3, plain = index_runs["zero3"], index_runs["plain"]
    assert_losses_match(plain, zero3, 1e-5)
    first, last = losses(zero3)[:5], losses(zero3)[-5:]
    assert sum(x["loss"] for x in last) < 0.5 * sum(x["loss"] for x in first)  # it learns
    # Dev selection, the best weights loaded back and the test decode, as one process does them:
    # index decoding and the grounding re-read kept every process making the same forward calls.
    assert [x for x in logged(zero3) if "dev" in x] == [x for x in logged(plain) if "dev" in x]
    assert metrics(zero3) == metrics(plain)
    assert metrics(zero3)["mner"]["f1"] >= 8  # untrained: about 1
    assert read_records(zero3 / "test_predictions.jsonl") == read_records(plain / "test_predictions.jsonl")
    checkpoint = next((zero3 / "checkpoints").glob("step_*"))
    assert len(list(checkpoint.rglob("*optim_states.pt"))) == 2


def test_zero3_text_targets_generate_in_lockstep(index_runs, root):
    """GMNER with text targets under ZeRO-3: the backbone's own generation (`synced_gpus`) and the
    grounding re-read on every process, against one process."""
    args = ["--config", "configs/gmner.yaml", "data.demo_train_tweets=320", "train.batch_size=8", "train.epochs=2",
            "train.eval_every_epochs=1", "train.learning_rate=0.005", "model.dropout=0.0", "decode.batch_size=50",
            "decode.max_new_tokens=40", "train.max_grad_norm=0"]
    demo = index_runs["demo"]
    log = train(launcher("zero3", root / "zero3.json"), root / "zero3_text", demo, args)
    train(PLAIN, root / "plain_gmner_text", demo, args, "train.gradient_accumulation_steps=2")
    assert "40 steps, 2 process(es)" in log
    assert_losses_match(root / "plain_gmner_text", root / "zero3_text", 1e-5)
    assert metrics(root / "zero3_text") == metrics(root / "plain_gmner_text")
    assert read_records(root / "zero3_text" / "test_predictions.jsonl") == read_records(
        root / "plain_gmner_text" / "test_predictions.jsonl")


def test_bf16_under_zero3_trains_in_bf16_and_decodes_like_its_run(index_runs, root, tmp_path):
    """bf16 ZeRO runs on a CPU too: DeepSpeed keeps bf16 weights (float32 in the optimizer), and
    the whole model gathered into `best/` is bf16."""
    args = ["--config", "configs/gmner.yaml", "data.demo_train_tweets=320", "train.batch_size=8", "train.epochs=2",
            "train.eval_every_epochs=2", "train.learning_rate=0.005", "decode.batch_size=50",
            "decode.max_new_tokens=40", "train.mixed_precision=bf16"]
    prefix = launcher("zero3", root / "zero3.json")
    prefix[prefix.index("--mixed_precision") + 1] = "bf16"
    out, demo = root / "zero3_bf16", index_runs["demo"]
    assert "40 steps, 2 process(es)" in train(prefix, out, demo, args)
    first, last = losses(out)[:5], losses(out)[-5:]
    assert sum(x["lm_loss"] for x in last) < 0.5 * sum(x["lm_loss"] for x in first)
    assert {tensor.dtype for tensor in load_file(str(out / "best" / "model.safetensors")).values()} == {torch.bfloat16}
    preds = tmp_path / "preds.jsonl"
    done = subprocess.run([sys.executable, "-m", "genie.cli", "decode", "--checkpoint", str(out / "best"), "--input",
                           str(demo / "gmner" / "test.jsonl"), "--output", str(preds)], cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    # DeepSpeed's bf16 runs every layer in bf16 (norms and softmax too), genie decode autocasts the
    # matmuls over float32 norms and heads: near ties may flip (measured: 3 of 300 tweets).
    decoded, in_run = read_records(preds), read_records(out / "test_predictions.jsonl")
    assert [r.id for r in decoded] == [r.id for r in in_run]
    assert sum(a != b for a, b in zip(decoded, in_run)) <= 0.05 * len(in_run)


def test_genie_decode_of_a_zero3_checkpoint_equals_the_one_process_model(index_runs, tmp_path):
    """`best/` of the ZeRO-3 run holds the whole model (gathered from both processes)."""
    demo, zero3, plain = index_runs["demo"], index_runs["zero3"], index_runs["plain"]
    a, b = load_file(str(zero3 / "best" / "model.safetensors")), load_file(str(plain / "best" / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape and a[k].numel() for k in a)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4  # measured: 2.1e-5 (roundoff, see above)
    outputs = []
    for run in (zero3, plain):
        out = tmp_path / f"{run.name}.jsonl"
        done = subprocess.run([sys.executable, "-m", "genie.cli", "decode", "--checkpoint", str(run / "best"),
                               "--input", str(demo / "gmner" / "test.jsonl"), "--output", str(out)], cwd=REPO,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(read_records(out))
    assert outputs[0] == outputs[1] == read_records(zero3 / "test_predictions.jsonl")


def test_zero3_killed_mid_epoch_resumes_exactly(index_runs, root):
    """SIGKILL to both workers and the launcher once the step-25 checkpoint exists (mid epoch 2),
    then the same command again: the run continues to the uninterrupted run's losses, weights and
    scores, and metrics.jsonl holds each step once."""
    out, demo, expected = root / "zero3_killed", index_runs["demo"], index_runs["zero3"]
    command = [*launcher("zero3", root / "zero3.json"), *INDEX, f"train.output_dir={out}", f"data.demo_dir={demo}"]
    proc = subprocess.Popen(command, cwd=REPO, env=environment(root), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + TIMEOUT
    while not (out / "checkpoints" / "step_25").is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    launcher_process = psutil.Process(proc.pid)
    for process in [*launcher_process.children(recursive=True), launcher_process]:  # workers: their own sessions
        process.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / "test_metrics.json").exists()

    log = train(launcher("zero3", root / "zero3.json"), out, demo, INDEX)
    assert "resumed from" in log
    assert logged(out) == logged(expected)
    assert metrics(out) == metrics(expected)
    a, b = load_file(str(out / "best" / "model.safetensors")), load_file(str(expected / "best" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lora_under_zero2_trains_like_one_process(root):
    """LoRA adapters on a saved backbone (a local save_pretrained folder), GMNER text targets."""
    demo = root / "demo_lora"
    cfg = load_config("configs/gmner.yaml", [f"data.demo_dir={demo}", "data.demo_train_tweets=160"])
    tokenizer, base = build_model(cfg, [load_task_data(cfg, get_task("gmner"))])
    folder = root / "base"
    base.backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    args = ["--config", "configs/gmner.yaml", "--model", str(folder), "peft.method=lora", "peft.r=4", "peft.dropout=0",
            "data.demo_train_tweets=160", "train.batch_size=8", "train.epochs=2", "train.eval_every_epochs=1",
            "train.max_grad_norm=0", "decode.max_new_tokens=40"]
    log = train(launcher("zero2", REPO / "configs" / "deepspeed" / "zero2.json"), root / "lora_zero2", demo, args)
    train(PLAIN, root / "lora_plain", demo, args, "train.gradient_accumulation_steps=2")
    assert "20 steps, 2 process(es)" in log

    assert_losses_match(root / "lora_plain", root / "lora_zero2", 0.0)
    assert read_records(root / "lora_zero2" / "test_predictions.jsonl") == read_records(
        root / "lora_plain" / "test_predictions.jsonl")
    best = root / "lora_zero2" / "best"
    assert (best / "adapter_model.safetensors").is_file() and not (best / "model.safetensors").exists()
    weights = GenieModel.from_pretrained(best).state_dict()
    assert any(".lora_B" in k for k in weights)
    assert all(not torch.equal(v, torch.zeros_like(v)) for k, v in weights.items() if ".lora_B" in k)
    original = base.backbone.state_dict()
    frozen = {k.removeprefix("backbone.base_model.model.").replace(".base_layer", ""): v
              for k, v in weights.items() if k.startswith("backbone.") and ".lora_" not in k}
    assert all(torch.equal(frozen[k], v) for k, v in original.items())  # the base is untouched
