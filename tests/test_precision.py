"""Mixed precision: bf16 autocasts the model's matmuls while the losses (the grounding KL, the
pointer's log-softmax) stay float32; fp16, which accelerate silently drops on a CPU, is refused
there in one line; and `mixed_precision: no` means no, not YAML's false."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from cli_output import run_cli
from test_optimizer import demo, tiny  # noqa: F401  (demo: its module-scoped fixture)

from genie.config import load_config
from genie.data import Collator
from genie.training.run import build_optimizer


@pytest.mark.parametrize("fmt", ["text", "index"])
def test_bf16_runs_the_model_in_bf16_and_the_losses_in_float32(demo, fmt):
    _, model, tokenizer, dataset = tiny(demo, fmt)
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    optimizer = build_optimizer(model, load_config(None))
    model, optimizer = accelerator.prepare(model, optimizer)
    batch = Collator(tokenizer.pad_token_id, 8)([dataset[i] for i in range(len(dataset))])
    assert batch["slot_example"].numel()  # the grounding loss is paid
    seen = set()
    hooks = [module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
             for module in model.modules() if isinstance(module, torch.nn.Linear)]
    before = [p.detach().clone() for p in model.parameters()]
    losses = model(batch)
    for hook in hooks:
        hook.remove()
    assert seen == {torch.bfloat16}  # every matmul of the backbone and genie's heads
    assert {name: value.dtype for name, value in losses.items()} == dict.fromkeys(losses, torch.float32)
    accelerator.backward(losses["loss"])
    optimizer.step()
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay float32
    assert sum(not torch.equal(a, b) for a, b in zip(before, model.parameters())) > len(before) // 2


def test_fp16_on_a_cpu_is_refused_before_the_run_folder_exists(tmp_path, capsys):
    out = tmp_path / "run"
    code, message = run_cli(capsys, "train", "--config", "configs/gmner.yaml", f"train.output_dir={out}",
                            f"data.demo_dir={tmp_path / 'demo'}", "train.mixed_precision=fp16")
    assert code == 2 and "fp16 needs a GPU" in message and "bf16" in message
    assert not out.exists()


def test_mixed_precision_no_is_the_word_no(tmp_path):
    assert load_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  mixed_precision: no\n")
    assert load_config(path).train.mixed_precision == "no"
    with pytest.raises(Exception, match="must be str"):  # other YAML booleans stay errors
        load_config(None, ["model.name=false"])
