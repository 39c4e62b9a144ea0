"""LoRA through peft: only the adapters and genie's heads train, checkpoints hold only those,
and `genie decode` rebuilds base + adapters to the same predictions."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from genie.config import load_config
from genie.errors import GenieError
from genie.model.modeling import GenieModel
from genie.records import read_records
from genie.tasks import get_task
from genie.training.run_setup import build_model, load_task_data

pytestmark = pytest.mark.slow


def test_lora_trains_adapters_only_and_reloads_exactly(tmp_path):
    demo = tmp_path / "demo"
    cfg = load_config("configs/mner.yaml", [f"data.demo_dir={demo}", "data.demo_train_tweets=200"])
    part = load_task_data(cfg, get_task("mner"))
    with pytest.raises(GenieError, match="adapts a pretrained backbone"):
        build_model(load_config("configs/mner.yaml", ["peft.method=lora"]), [part])
    tokenizer, base = build_model(cfg, [part])  # stands in for a pretrained model saved with save_pretrained
    folder = tmp_path / "base"
    base.backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "genie.cli", "train", "--config", "configs/mner.yaml", "--model",
                          str(folder), "peft.method=lora", "peft.r=4", f"data.demo_dir={demo}",
                          "data.demo_train_tweets=200", f"train.output_dir={out}", "train.epochs=2",
                          "train.eval_every_epochs=1", "decode.max_new_tokens=24"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

    trained = GenieModel.from_pretrained(out / "best")
    weights = trained.state_dict()
    lora = {k: v for k, v in weights.items() if ".lora_" in k}
    assert lora and all(not torch.equal(v, torch.zeros_like(v)) for k, v in lora.items() if "lora_B" in k)
    frozen = {k.removeprefix("backbone.base_model.model.").replace(".base_layer", ""): v
              for k, v in weights.items() if k.startswith("backbone.") and ".lora_" not in k}
    original = base.backbone.state_dict()
    assert frozen.keys() == original.keys()
    for key, value in original.items():  # the frozen base is untouched
        assert torch.equal(frozen[key], value), key
    for key, value in base.regions.state_dict().items():  # the vision projection trains
        assert not torch.equal(weights[f"regions.{key}"], value), key

    # What is saved: the adapters and the heads, never the frozen base.
    assert not (out / "best" / "model.safetensors").exists()
    assert (out / "best" / "adapter_model.safetensors").is_file()
    checkpoint = load_file(str(next((out / "checkpoints").glob("step_*")) / "model.safetensors"))
    assert set(checkpoint) == {k for k in weights if ".lora_" in k or not k.startswith("backbone.")}

    # Reload (base + adapters) and decode: the run's own test predictions, exactly.
    preds = tmp_path / "preds.jsonl"
    decoded = subprocess.run([sys.executable, "-m", "genie.cli", "decode", "--checkpoint", str(out / "best"),
                              "--input", str(demo / "mner" / "test.jsonl"), "--output", str(preds)],
                             capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    assert read_records(preds) == read_records(out / "test_predictions.jsonl")
