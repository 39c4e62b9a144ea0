"""MMIB's bottleneck and InfoNCE alignment, CAG's consistency-adaptive alignment: their values on
hand-made tensors, where their gradients go, and that disabled they cost nothing."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from genie.config import RegularizersConfig, load_config
from genie.data import Collator, GenieDataset
from genie.demo import build_demo
from genie.errors import GenieError
from genie.model.modeling import GenieModel
from genie.model.targets import make_targets
from genie.regularizers import VariationalBottleneck, gaussian_kl, masked_mean
from genie.regularizers.contrastive import (
    _symmetric_nce,
    consistency_adaptive_nce,
    consistency_temperatures,
    info_nce,
    similarities,
)
from genie.tasks import get_task
from genie.training.run_setup import build_model, load_checkpoint, load_task_data

GMNER = get_task("gmner")


def test_gaussian_kl_known_values_and_only_masked_in_positions():
    mean = torch.zeros(1, 3, 4)
    logvar = torch.zeros(1, 3, 4)
    mean[0, 0] = 1.0  # KL per dimension 0.5 * mean^2 = 0.5
    logvar[0, 1] = math.log(2.0)  # 0.5 * (2 - 1 - log 2)
    mean[0, 2], logvar[0, 2] = 100.0, 5.0  # masked out: must not count
    mask = torch.tensor([[True, True, False]])
    expected = (0.5 + 0.5 * (1.0 - math.log(2.0))) / 2
    assert gaussian_kl(mean, logvar, mask).item() == pytest.approx(expected, rel=1e-6)
    assert gaussian_kl(torch.zeros(2, 2, 3), torch.zeros(2, 2, 3), torch.ones(2, 2, dtype=torch.bool)).item() == 0.0
    assert gaussian_kl(mean, logvar, torch.zeros(1, 3, dtype=torch.bool)).item() == 0.0  # nothing to pay for


def test_bottleneck_samples_when_training_and_reads_the_mean_at_inference():
    torch.manual_seed(0)
    bottleneck = VariationalBottleneck(8)
    x = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        bottleneck.eval()
        z, kl = bottleneck(x, mask)
        assert torch.equal(z, x)  # starts as the identity
        assert torch.equal(bottleneck(x, mask)[0], z)
        assert kl.item() == pytest.approx(0.5 * (x.pow(2).mean().item() + math.exp(-6.0) - 1.0 + 6.0), rel=1e-5)
        bottleneck.train()
        bottleneck.logvar.bias.fill_(math.log(0.25))  # sigma 0.5
        draws = torch.stack([bottleneck(x, mask)[0] for _ in range(4000)])
    assert not torch.equal(draws[0], draws[1])
    assert torch.allclose(draws.mean(0), x, atol=0.05)
    assert torch.allclose(draws.std(0), torch.full_like(x, 0.5), atol=0.03)


def test_info_nce_at_its_bounds():
    n = 4
    same = torch.ones(n, 3)
    # Representations that tell the posts apart not at all: exactly log N (zero mutual information).
    assert info_nce(same, same, 0.1).item() == pytest.approx(math.log(n), rel=1e-6)
    # Orthonormal, matched pairs: log(1 + (N - 1) exp(-1 / tau)), towards 0 as tau shrinks.
    eye = torch.eye(n)
    for tau in (1.0, 0.1):
        assert info_nce(eye, eye, tau).item() == pytest.approx(math.log(1 + (n - 1) * math.exp(-1 / tau)), abs=1e-6)
    assert info_nce(eye, eye, 0.01).item() < 1e-6
    # Every post paired with another post's image: far above log N.
    assert info_nce(eye, eye.roll(1, 0), 0.1).item() > 9.0
    # Scale does not matter: cosine similarity.
    assert info_nce(3 * eye, eye / 2, 0.1).item() == pytest.approx(info_nce(eye, eye, 0.1).item(), rel=1e-6)


def test_cag_temperature_formula_and_hand_computed_loss():
    taus = consistency_temperatures(torch.tensor([1.0, 0.0, -1.0]), 0.1, 0.5)
    assert torch.allclose(taus, torch.tensor([0.05, 0.1, 0.15]))
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    image = torch.tensor([[1.0, 0.0], [0.6, 0.8]])  # cosines: post 0 1.0, post 1 0.8; across 0.6 and 0.0
    tau, alpha = 0.2, 0.5
    t0, t1 = tau * (1 - alpha * 1.0), tau * (1 - alpha * 0.8)

    def ce(logits: list[float], target: int) -> float:
        return -logits[target] + math.log(sum(math.exp(v) for v in logits))

    text_to_image = ce([1.0 / t0, 0.6 / t0], 0) + ce([0.0 / t1, 0.8 / t1], 1)
    image_to_text = ce([1.0 / t0, 0.0 / t0], 0) + ce([0.6 / t1, 0.8 / t1], 1)
    expected = (text_to_image / 2 + image_to_text / 2) / 2
    assert consistency_adaptive_nce(text, image, tau, alpha).item() == pytest.approx(expected, rel=1e-6)
    assert consistency_adaptive_nce(text, image, tau, 0.0).item() == pytest.approx(info_nce(text, image, tau).item())


def test_cag_pulls_consistent_pairs_harder_while_their_softmax_is_not_saturated():
    sims = torch.full((4, 4), 0.2)
    sims.diagonal().copy_(torch.tensor([0.9, 0.8, 0.1, 0.0]))  # posts 0-1 consistent, 2-3 not

    def pull(alpha: float) -> torch.Tensor:
        """-dL/d(cosine of each post's own text and image)."""
        leaf = sims.clone().requires_grad_()
        _symmetric_nce(leaf, consistency_temperatures(sims.diagonal(), 1.0, alpha)).backward()
        return -leaf.grad.diagonal()

    ratio = pull(0.5) / pull(0.0)
    assert ratio[:2].min() > 1.3 and ratio[2:].max() < 1.1


def test_consistency_is_a_weight_the_loss_does_not_optimise():
    torch.manual_seed(0)
    image, text = torch.randn(6, 16), torch.randn(6, 16)

    def text_grad(loss_fn) -> torch.Tensor:
        leaf = text.clone().requires_grad_()
        loss_fn(leaf).backward()
        return leaf.grad

    fixed = consistency_temperatures(similarities(text, image).diagonal(), 0.1, 0.5)
    assert torch.allclose(text_grad(lambda t: consistency_adaptive_nce(t, image, 0.1, 0.5)),
                          text_grad(lambda t: _symmetric_nce(similarities(t, image), fixed)))


def test_masked_mean_ignores_padding_and_empty_rows():
    states = torch.tensor([[[1.0], [3.0], [100.0]], [[5.0], [6.0], [7.0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert masked_mean(states, mask).flatten().tolist() == [2.0, 0.0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    build_demo(out, GMNER.demo, n_train=30, n_dev=8, n_test=8, feature_dim=16)
    return out


def tiny(demo, seed: int = 0, **regularizers):
    """A tiny GMNER model with the given regularizers, and a batch of the demo's dev posts."""
    overrides = [f"regularizers.{k}={v}" for k, v in regularizers.items()]
    cfg = load_config("configs/gmner.yaml", ["model.d_model=32", "model.heads=2", "model.d_ff=64", "features.dim=16",
                                             "model.vocab_size=300", "model.dropout=0.0", f"data.dir={demo}",
                                             f"features.dir={demo / 'features'}", *overrides])
    part = load_task_data(cfg, GMNER)
    torch.manual_seed(seed)
    tokenizer, model = build_model(cfg, [part])
    targets = make_targets("text", GMNER, tokenizer, cfg.model.max_source_length, cfg.model.max_target_length)
    dataset = GenieDataset(part.records["dev"], targets, part.features)
    return cfg, model, Collator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])


def grads(model, loss: torch.Tensor) -> dict[str, bool]:
    """Which parameters the loss reaches (a nonzero gradient)."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in model.named_parameters()}


def reached(got: dict[str, bool], prefix: str) -> list[bool]:
    return [hit for name, hit in got.items() if name.startswith(prefix)]


def test_kl_reaches_the_bottlenecks_and_what_feeds_them_only(demo):
    _, model, batch = tiny(demo, bottleneck=True)
    got = grads(model.train(), model(batch)["kl_loss"])
    assert all(reached(got, "regularizers.text_bottleneck.")) and all(reached(got, "regularizers.region_bottleneck."))
    assert all(reached(got, "regions.features.")) and got["backbone.shared.weight"]
    for untouched in ("backbone.encoder.block.", "backbone.decoder.", "grounding."):
        assert reached(got, untouched) and not any(reached(got, untouched)), untouched


def test_alignment_reaches_the_projections_and_the_unimodal_inputs_only(demo):
    for alignment in ("infonce", "cag"):
        _, model, batch = tiny(demo, alignment=alignment)
        got = grads(model.train(), model(batch)["alignment_loss"])
        for projection in ("regularizers.text_projection.", "regularizers.region_projection."):
            assert all(reached(got, projection))
        assert all(reached(got, "regions.features.")) and got["backbone.shared.weight"]
        assert not any(reached(got, "backbone.encoder.block.")) and not any(reached(got, "grounding."))


def test_the_task_loss_trains_the_variance_through_the_sample_only_when_training(demo):
    _, model, batch = tiny(demo, bottleneck=True)
    assert all(reached(grads(model.train(), model(batch)["lm_loss"]), "regularizers.region_bottleneck.logvar."))
    assert not any(reached(grads(model.eval(), model(batch)["lm_loss"]), "regularizers.region_bottleneck.logvar."))


def test_the_loss_adds_the_weighted_terms(demo):
    cfg, model, batch = tiny(demo, bottleneck=True, alignment="cag", beta=0.3, alignment_weight=0.7)
    losses = model.eval()(batch, grounding_weight=0.5)
    expected = (losses["lm_loss"] + 0.5 * losses["grounding_loss"] + 0.3 * losses["kl_loss"]
                + 0.7 * losses["alignment_loss"])
    assert losses["kl_loss"] > 0 and losses["alignment_loss"] > 0
    assert torch.allclose(losses["loss"], expected)


def forward_flops(model, batch) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(batch)
    return counter.get_total_flops()


def test_disabled_regularizers_cost_nothing(demo):
    # Weights set but no term switched on: still disabled.
    _, disabled, batch = tiny(demo, seed=1, beta=0.5, alignment_weight=2.0, cag_alpha=0.9)
    plain = GenieModel(disabled.backbone, 16)  # built with no regularizers at all
    plain.load_state_dict(disabled.state_dict())
    assert disabled.regularizers is None
    assert disabled.state_dict().keys() == plain.state_dict().keys()
    with torch.no_grad():
        losses = disabled.eval()(batch)
        assert losses.keys() == {"lm_loss", "grounding_loss", "loss"}
        assert torch.equal(losses["loss"], plain.eval()(batch)["loss"])
    assert forward_flops(disabled, batch) == forward_flops(plain, batch)
    _, enabled, _ = tiny(demo, seed=1, bottleneck=True, alignment="cag")
    assert forward_flops(enabled, batch) > forward_flops(plain, batch)  # the counter does see the terms


def test_a_regularized_model_saves_reloads_and_must_be_continued_with_its_settings(demo, tmp_path):
    cfg, model, batch = tiny(demo, bottleneck=True, alignment="infonce", beta=0.2)
    with torch.no_grad():  # as training would: the bottleneck no longer the identity
        model.regularizers.text_bottleneck.mean.weight.mul_(0.5)
    model.save_pretrained(tmp_path / "m")
    loaded = load_checkpoint(tmp_path / "m", cfg, GMNER).eval()
    assert loaded.regularizer_config == cfg.regularizers
    assert torch.equal(loaded.generate(batch, 1, 20), model.eval().generate(batch, 1, 20))
    other = load_config("configs/gmner.yaml", ["regularizers.alignment=cag"])
    with pytest.raises(GenieError, match="trained with regularizers"):
        load_checkpoint(tmp_path / "m", other, GMNER)


@pytest.mark.parametrize("override, message", [
    ("regularizers.alignment=mine", "'regularizers.alignment' must be one of none, infonce, cag, got 'mine'"),
    ("regularizers.cag_alpha=1.0", "'regularizers.cag_alpha' must be >= 0.0 and < 1.0, got 1.0"),
    ("regularizers.temperature=0", "'regularizers.temperature' must be > 0.0, got 0.0"),
    ("regularizers.beta=-1", "'regularizers.beta' must be >= 0.0, got -1.0"),
    ("regularizers.bottlenek=true", "unknown config key 'regularizers.bottlenek'"),
])
def test_bad_regularizer_settings_are_clear_errors(override, message):
    with pytest.raises(GenieError, match=message):
        load_config("configs/gmner.yaml", [override])
    assert not RegularizersConfig().enabled
