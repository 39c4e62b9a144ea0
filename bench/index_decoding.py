"""Index decoding against plain text generation on the same backbone (issue 20, part 3).

genie's grammar-constrained pointer decoding (`GenieModel.generate_indices`, greedy) and the
backbone's own Hugging Face `generate` (greedy text) decode the same batch of demo tweets from
the same encoder outputs (encoded once, outside the timing), for the same number of steps.

Text generation runs exactly `STEPS` steps: the end token is held back until then (a
`MinNewTokensLengthLogitsProcessor`, which is what `min_new_tokens` builds). Index decoding has
no such switch, and an untrained model's greedy index sequences often end early (the end label
is allowed between any two units). So the end label's embedding is zeroed: it scores 0, while
the word pointers it competes with at a unit boundary score about N(0, 1), and one of them
nearly always wins. And the batch is the first `TWEETS` of `POOL` demo tweets whose sequences
take all `STEPS` (an example's indices do not depend on its batch), since the length budget can
also force the end label a few steps early, when a whole unit no longer fits. `measure` checks
that the batch runs all the steps. Zeroing the embedding changes what is decoded, not the work
of a step. Run alone: `python -m bench.index_decoding [--size tiny] [--threads N]`."""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from transformers import MinNewTokensLengthLogitsProcessor

from bench.run import REPO, SIZES
from genie.config import load_config
from genie.data import Collator, GenieDataset
from genie.model.targets import make_targets
from genie.tasks import get_task
from genie.training.run_setup import build_model, load_task_data

STEPS, TWEETS, POOL, REPEATS = 32, 16, 64, 3


def measure(threads: int = 2, size: str = "base-like") -> dict:
    """Tweets and decoder steps per second of both decodings (best of `REPEATS`), and their ratio."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    task = get_task("gmner")
    with tempfile.TemporaryDirectory(prefix="genie-bench-index-") as work:
        cfg = load_config(REPO / "configs" / "gmner.yaml", [
            "target_format=index", f"data.demo_dir={work}", "data.demo_train_tweets=300", "model.vocab_size=4000",
            *(f"{k}={v}" for k, v in SIZES[size].items())])
        part = load_task_data(cfg, task)
        tokenizer, model = build_model(cfg, [part])
        targets = make_targets("index", task, tokenizer, cfg.model.max_source_length, cfg.model.max_target_length)
        dataset = GenieDataset(part.records["test"][:POOL], targets, part.features)
        items = [dataset[i] for i in range(len(dataset))]  # the features are read here
    grammar, collate = task.index_format.grammar, Collator(tokenizer.pad_token_id)
    model.eval()
    with torch.inference_mode():
        model.pointer.labels.weight[grammar.end] = 0.0
        pool = model.generate_indices(collate(items), grammar, 1, STEPS)
        batch = collate([item for item, s in zip(items, pool) if len(s) == STEPS][:TWEETS])
        encoded = model.encode(batch)
    hold_end = MinNewTokensLengthLogitsProcessor(1, STEPS, model.backbone.generation_config.eos_token_id)
    sequences = model.generate_indices(batch, grammar, 1, STEPS, encoded=encoded)
    if any(len(s) != STEPS for s in sequences):
        raise RuntimeError(f"index decoding ended before {STEPS} steps: {sorted(len(s) for s in sequences)}")
    if model.generate(batch, 1, STEPS, [hold_end], encoded=encoded).shape[1] != STEPS + 1:  # + the start token
        raise RuntimeError(f"text generation did not run {STEPS} steps")
    genie, hf = best_seconds(lambda: model.generate_indices(batch, grammar, 1, STEPS, encoded=encoded),
                             lambda: model.generate(batch, 1, STEPS, [hold_end], encoded=encoded))
    return {"size": size, "threads": threads, "tweets": TWEETS, "steps": STEPS, "vocab_size": len(tokenizer),
            "genie_tweets_per_second": TWEETS / genie, "hf_tweets_per_second": TWEETS / hf,
            "genie_steps_per_second": STEPS / genie, "hf_steps_per_second": STEPS / hf, "ratio": hf / genie}


def best_seconds(*decodes) -> list[float]:
    """The fastest of `REPEATS` runs of each, after an untimed warm-up; the runs take turns, so
    that a change in the machine's load weighs on all of them."""
    times = [[] for _ in decodes]
    for repeat in range(REPEATS + 1):
        for decode, seconds in zip(decodes, times):
            started = time.perf_counter()
            decode()
            if repeat:
                seconds.append(time.perf_counter() - started)
    return [min(seconds) for seconds in times]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", choices=sorted(SIZES), default="base-like")
    args = parser.parse_args()
    print(json.dumps(measure(args.threads, args.size), indent=2))
