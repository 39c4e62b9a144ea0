"""The embedded default run learns, and the trained model grounds through the image.

The default run (`default_run` in conftest.py) trains the same tiny model `make train TASK=gmner`
trains (a few CPU minutes); the tests that read it form one xdist group, so it is trained once."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from transformers import AutoTokenizer

from genie.config import load_config
from genie.data import Collator, GenieDataset
from genie.inference.decode import decode_loader, predict
from genie.inference.files import decode_file
from genie.model.modeling import build_backbone
from genie.model.targets import make_targets
from genie.model.tokenizer import train_t5_tokenizer
from genie.records import read_records
from genie.regions.store import build_store
from genie.tasks import get_task
from genie.training.precision import make_accelerator
from genie.training.run import train
from genie.training.run_setup import (
    build_model,
    feature_source,
    load_checkpoint,
    load_task_data,
    task_features_dir,
)

pytestmark = pytest.mark.slow


@pytest.mark.xdist_group("gmner_default_run")
def test_default_demo_learns_gmner(default_run):
    metrics, out = default_run
    assert metrics["gmner"]["f1"] >= 85.0, metrics
    parser = metrics["parser"]  # constrained decoding: every generated clause is read
    assert parser["malformed"] == parser["unmatched"] == parser["dead_ends"] == 0, parser
    demo_test = read_records(f"{load_config(out / 'genie.yaml').data.demo_dir}/gmner/test.jsonl")
    assert metrics["gmner"]["gold"] == sum(len(r.entities) for r in demo_test)
    assert (out / "test_predictions.jsonl").is_file() and (out / "best" / "genie.yaml").is_file()


@pytest.mark.xdist_group("gmner_default_run")
def test_the_trained_model_grounds_through_the_image(default_run, tmp_path):
    """Decoded with every region feature zeroed, the same model loses its grounding."""
    metrics, out = default_run
    test_file = f"{load_config(out / 'genie.yaml').data.demo_dir}/gmner/test.jsonl"
    decode_file(out / "best", Path(test_file), tmp_path / "blind.jsonl", overrides=["features.zero=true"])
    blind = get_task("gmner").evaluate(read_records(test_file), read_records(tmp_path / "blind.jsonl"))
    for metric in ("gmner", "eeg"):
        assert blind[metric]["f1"] < metrics[metric]["f1"] - 15.0, (metric, blind[metric], metrics[metric])


@pytest.mark.xdist_group("gmner_default_run")
def test_in_the_image_without_regions_is_kept_and_scored_wrong(default_run, tmp_path):
    """Every image missing (`on_missing=zeros`: all regions masked): what the model says is in
    the image gets no box but keeps `in_image`, and never counts as a correct "not in the image"."""
    _, out = default_run
    test_file = Path(f"{load_config(out / 'genie.yaml').data.demo_dir}/gmner/test.jsonl")
    (tmp_path / "no_features").mkdir()
    stats = decode_file(out / "best", test_file, tmp_path / "blind.jsonl", features_dir=str(tmp_path / "no_features"),
                        overrides=["features.on_missing=zeros"])
    predicted = [e for r in read_records(tmp_path / "blind.jsonl") for e in r.entities]
    said = [e for e in predicted if e.in_image]
    assert said and not any(e.boxes for e in predicted) and stats["ungrounded_slots"] == len(said)
    gold = read_records(test_file)
    said_only = [replace(r, entities=[e for e in r.entities if e.in_image])
                 for r in read_records(tmp_path / "blind.jsonl")]
    scores = get_task("gmner").evaluate(gold, said_only)
    assert scores["gmner"]["predicted"] == len(said)
    assert scores["gmner"]["correct"] == scores["eeg"]["correct"] == 0  # never a correct grounding


def decoded_at(model, dataset: GenieDataset, batch_size: int, cfg) -> list[dict]:
    preds, _ = predict(Accelerator(cpu=True), model, dataset, decode_loader(dataset, batch_size),
                       replace(cfg.decode, batch_size=batch_size))
    return [p.to_dict() for p in preds]


def default_test_split(out: Path) -> tuple:
    """The default run's config, best model, and demo test split as a dataset."""
    cfg = load_config(out / "best" / "genie.yaml")
    task = get_task("gmner")
    targets = make_targets("text", task, AutoTokenizer.from_pretrained(out / "best"), cfg.model.max_source_length,
                           cfg.model.max_target_length)
    dataset = GenieDataset(read_records(f"{cfg.data.demo_dir}/gmner/test.jsonl"), targets,
                           feature_source(cfg, task_features_dir(cfg, task)))
    return cfg, load_checkpoint(out / "best", cfg, task), dataset


@pytest.mark.xdist_group("gmner_default_run")
def test_decoding_runs_the_encoder_once_per_batch(default_run):
    """Generation and the grounding re-read share one encoder pass, with the re-read's region
    scores exactly those of a fresh encoding."""
    cfg, model, dataset = default_test_split(default_run[1])
    calls = []
    hook = model.backbone.get_encoder().register_forward_hook(lambda *_: calls.append(1))
    try:
        preds, _ = predict(Accelerator(cpu=True), model, dataset, decode_loader(dataset, 100), cfg.decode)
    finally:
        hook.remove()
    assert len(calls) == 3  # 300 tweets, 3 batches of 100
    assert sum(bool(e.boxes) for p in preds for e in p.entities) > 100  # and grounding did run
    batch = Collator(dataset.targets.tokenizer.pad_token_id)([dataset[k] for k in range(8)])
    with torch.inference_mode():
        shared = model.region_logits(batch, model.eval().encode(batch))
    assert torch.equal(shared, model.region_logits(batch))


@pytest.mark.xdist_group("gmner_default_run")
def test_bf16_decoding_autocasts_every_matmul_and_scores_like_float32(default_run):
    """A bf16 accelerator decodes in bf16 (generation and the grounding re-read call the model's
    own methods, which accelerate's forward wrapper does not reach), and loses little."""
    cfg, model, dataset = default_test_split(default_run[1])
    task = get_task("gmner")
    scores = {}
    for precision in ("no", "bf16"):
        seen = set()
        hooks = [module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
                 for module in model.modules() if isinstance(module, torch.nn.Linear)]
        try:
            preds, _ = predict(make_accelerator(precision, cpu=True), model, dataset, decode_loader(dataset, 100),
                               cfg.decode)
        finally:
            for hook in hooks:
                hook.remove()
        assert seen == {torch.bfloat16 if precision == "bf16" else torch.float32}
        scores[precision] = task.evaluate(dataset.records, preds)["gmner"]["f1"]
    print(f"test GMNER F1 decoded in float32 {scores['no']:.2f}, in bf16 {scores['bf16']:.2f}")
    assert scores["bf16"] >= scores["no"] - 2.0, scores


@pytest.mark.xdist_group("gmner_default_run")
def test_predictions_do_not_depend_on_the_batch(default_run):
    """The test split decoded 1, 7, 32 and 100 at a time gives the same predictions. A record
    may differ in float32 only where float rounding breaks a tie: in float64 it may not."""
    cfg, model, dataset = default_test_split(default_run[1])
    targets = dataset.targets
    runs = {size: decoded_at(model, dataset, size, cfg) for size in (1, 7, 32, 100)}
    differing = {k for size in runs for k, (a, b) in enumerate(zip(runs[1], runs[size])) if a != b}
    print(f"records whose float32 prediction depends on the batch: {len(differing)} of {len(dataset)}")
    assert len(differing) <= 3, sorted(differing)
    if differing:
        subset = GenieDataset([dataset.records[k] for k in sorted(differing)], targets, dataset.features)
        model64 = model.double()
        assert decoded_at(model64, subset, 1, cfg) == decoded_at(model64, subset, len(subset), cfg)


@pytest.mark.xdist_group("gmner_default_run")
def test_decode_and_evaluate_cli_reproduce_the_run(default_run, tmp_path):
    metrics, out = default_run
    cfg = load_config(out / "genie.yaml")
    test_file = f"{cfg.data.demo_dir}/gmner/test.jsonl"
    preds = tmp_path / "preds.jsonl"
    decoded = subprocess.run([sys.executable, "-m", "genie.cli", "decode", "--checkpoint", str(out / "best"),
                              "--input", test_file, "--output", str(preds)], capture_output=True, text=True)
    assert decoded.returncode == 0, decoded.stderr
    assert len(read_records(preds)) == len(read_records(test_file))
    scored = subprocess.run([sys.executable, "-m", "genie.cli", "evaluate", "--task", "gmner", "--gold", test_file,
                             "--pred", str(preds)], capture_output=True, text=True)
    assert json.loads(scored.stdout)["gmner"] == metrics["gmner"]


@pytest.mark.xdist_group("gmner_default_run")
def test_decoding_from_a_feature_store_reproduces_the_run(default_run, tmp_path):
    """The run read `.npz` files; a float32 store of them gives the same predictions, and a
    float16 one (features cast by the model) nearly the same scores."""
    metrics, out = default_run
    cfg = load_config(out / "genie.yaml")
    test_file = Path(f"{cfg.data.demo_dir}/gmner/test.jsonl")
    run_predictions = (out / "test_predictions.jsonl").read_text()
    for dtype in ("float32", "float16"):
        store = tmp_path / f"store-{dtype}"
        build_store(task_features_dir(cfg, get_task("gmner")), store, max_regions=cfg.features.max_regions,
                    dtype=dtype)
        stats = decode_file(out / "best", test_file, tmp_path / f"{dtype}.jsonl", features_dir=str(store))
        assert stats["features"] == f"region features: all {stats['records']} images found"
        if dtype == "float32":
            assert (tmp_path / "float32.jsonl").read_text() == run_predictions
        else:
            scores = get_task("gmner").evaluate(read_records(test_file), read_records(tmp_path / "float16.jsonl"))
            assert abs(scores["gmner"]["f1"] - metrics["gmner"]["f1"]) < 2.0, (scores["gmner"], metrics["gmner"])


def test_model_option_loads_a_local_save_pretrained_folder(tmp_path, caplog):
    """`model.name=PATH` is the code path a real checkpoint (facebook/bart-base, ...) takes."""
    cfg = load_config("configs/gmner.yaml", [f"data.demo_dir={tmp_path / 'demo'}"])
    task = get_task("gmner")
    part = load_task_data(cfg, task)
    tokenizer = train_t5_tokenizer([task.source_text(r) for r in part.records["train"][:200]], 300)
    backbone = build_backbone(cfg.model, tokenizer, max_positions=256)
    folder = tmp_path / "local-model"
    backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with caplog.at_level(logging.WARNING, logger="genie.training.run_setup"):
        loaded_tokenizer, model = build_model(load_config("configs/gmner.yaml", [f"model.name={folder}"]), [part])
        assert "keeps its own sizes" not in caplog.text  # the config's sizes are the backbone's
        build_model(load_config("configs/gmner.yaml", [f"model.name={folder}", "model.d_model=32"]), [part])
    assert f"{folder} keeps its own sizes; ignored: model.d_model=32 (it has 64)" in caplog.text
    small = tmp_path / "small-model"  # other sizes than the config's, which are the tiny defaults: no request
    build_backbone(dataclasses.replace(cfg.model, d_model=32), tokenizer, max_positions=256).save_pretrained(small)
    tokenizer.save_pretrained(small)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genie.training.run_setup"):
        build_model(load_config("configs/gmner.yaml", [f"model.name={small}"]), [part])
    assert "keeps its own sizes" not in caplog.text
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    loaded = model.backbone.state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(loaded[key], value), key
    result = subprocess.run([sys.executable, "-m", "genie.cli", "train", "--config", "configs/gmner.yaml",
                             "--model", str(folder), f"data.demo_dir={tmp_path / 'demo'}",
                             f"train.output_dir={tmp_path / 'run'}", "train.max_steps=3"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert load_config(tmp_path / "run" / "genie.yaml").model.name == str(folder)
    assert (tmp_path / "run" / "best" / "genie_heads.safetensors").is_file()
    # The same backbone under index targets: the pointer head is added to it, and saved.
    result = subprocess.run([sys.executable, "-m", "genie.cli", "train", "--config", "configs/gmner.yaml",
                             "--model", str(folder), "target_format=index", f"data.demo_dir={tmp_path / 'demo'}",
                             f"train.output_dir={tmp_path / 'index'}", "train.max_steps=3"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    heads = load_file(str(tmp_path / "index" / "best" / "genie_heads.safetensors"))
    assert heads["pointer.labels.weight"].shape == (len(task.index_format.grammar.specials) + 1, cfg.model.d_model)


@pytest.mark.parametrize("fmt", ["text", "index"])
def test_bart_family_trains_and_decodes(fmt, tmp_path):
    """tiny-bart: byte-level BPE tokenizer, learned positions, eos as decoder start."""
    out = tmp_path / "run"
    metrics = train(load_config("configs/gmner.yaml", ["model.name=tiny-bart", f"data.demo_dir={tmp_path / 'demo'}",
                                                        "data.demo_train_tweets=300", f"train.output_dir={out}",
                                                        "train.epochs=1", f"target_format={fmt}"]))
    predictions = read_records(out / "test_predictions.jsonl")
    assert [r.id for r in predictions] == [r.id for r in read_records(tmp_path / "demo" / "gmner" / "test.jsonl")]
    assert load_config(out / "best" / "genie.yaml").model.name == "tiny-bart"
    assert metrics["gmner"]["gold"] == metrics["mner"]["gold"] > 0
    # Constrained decoding, byte-level BPE too: whatever a barely trained model emits parses.
    assert metrics["parser"]["malformed"] == metrics["parser"]["unmatched"] == 0
