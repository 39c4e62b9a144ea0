"""The reference loops' optimizer hygiene: no weight decay on biases, norms and embeddings, and
batches padded to a multiple of 8 in bf16/fp16 training, which must not change a loss."""

from __future__ import annotations

import pytest
import torch

from genie.config import load_config
from genie.data import Collator, GenieDataset
from genie.demo import build_demo
from genie.model.targets import make_targets
from genie.tasks import get_task
from genie.training.run import build_optimizer
from genie.training.run_setup import build_model, load_task_data

GMNER = get_task("gmner")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    build_demo(out, GMNER.demo, n_train=20, n_dev=12, n_test=4, feature_dim=16)
    return out


def tiny(demo, fmt: str = "text"):
    cfg = load_config("configs/gmner.yaml", [f"target_format={fmt}", "model.d_model=32", "model.heads=2",
                                             "model.d_ff=64", "features.dim=16", "model.vocab_size=300",
                                             "model.dropout=0.0", f"data.dir={demo}", f"features.dir={demo / 'features'}",
                                             "train.weight_decay=0.1"])
    part = load_task_data(cfg, GMNER)
    torch.manual_seed(0)
    tokenizer, model = build_model(cfg, [part])
    targets = make_targets(fmt, GMNER, tokenizer, cfg.model.max_source_length, cfg.model.max_target_length)
    return cfg, model, tokenizer, GenieDataset(part.records["dev"], targets, part.features)


def test_biases_norms_and_embeddings_are_not_decayed_and_every_weight_matrix_is(demo):
    cfg, model, _, _ = tiny(demo)
    optimizer = build_optimizer(model, cfg)
    decayed, kept = (group["params"] for group in optimizer.param_groups)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(map(id, decayed + kept)) == sorted(names)  # each parameter exactly once
    kept_names = {names[id(p)] for p in kept}
    assert any(n.endswith("shared.weight") for n in kept_names)  # the (tied) token embeddings
    assert any("relative_attention_bias" in n for n in kept_names)  # T5's position embeddings
    assert any("layer_norm" in n for n in kept_names) and any(n.endswith(".bias") for n in kept_names)
    assert all(p.ndim == 2 and "norm" not in names[id(p)] for p in decayed) and len(decayed) > 10

    # With zero gradients AdamW's update is decay alone: decayed weights shrink by lr * wd, the rest stay.
    before = {id(p): p.detach().clone() for p in decayed + kept}
    for p in decayed + kept:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    factor = 1 - cfg.train.learning_rate * 0.1
    assert all(torch.allclose(p, before[id(p)] * factor) for p in decayed)
    assert all(torch.equal(p, before[id(p)]) for p in kept)


def test_frozen_parameters_are_left_out():
    cfg = load_config(None, ["train.weight_decay=0.1"])
    model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    model[1].weight.requires_grad_(False)
    decayed, kept = (group["params"] for group in build_optimizer(model, cfg).param_groups)
    assert decayed == [] and len(kept) == 4  # embedding, linear bias, norm weight and bias


@pytest.mark.parametrize("fmt", ["text", "index"])
def test_padding_to_a_multiple_of_8_changes_no_loss(demo, fmt):
    _, model, tokenizer, dataset = tiny(demo, fmt)
    items = [dataset[i] for i in range(len(dataset))]
    plain, padded = Collator(tokenizer.pad_token_id)(items), Collator(tokenizer.pad_token_id, 8)(items)
    for key in ("input_ids", "labels"):
        assert padded[key].shape[1] % 8 == 0 and padded[key].shape[1] >= plain[key].shape[1]
    assert any(padded[key].shape[1] > plain[key].shape[1] for key in ("input_ids", "labels"))
    model.eval()
    with torch.no_grad():
        a, b = model(plain), model(padded)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), (name, a[name], b[name])
