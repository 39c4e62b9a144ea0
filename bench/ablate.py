"""`make ablate TASK=gmner`: the regularizers against none, on the task's demo with a share of
posts whose image is unrelated noise.

Arms: none / IB (MMIB's bottleneck) / align (MMIB's InfoNCE) / both / CAG (consistency-adaptive
contrast), each at every noise share and seed: one `genie train` run per cell, `--jobs` at a
time with one thread each. The demo data is the same for every arm and seed (`data.demo_seed`);
the seed is the training seed. Finished runs (their test_metrics.json) are reused, so an
interrupted ablation continues where it stopped. Writes `bench/ablation_<task>.json` and the table
between the ablate markers in docs/regularizers.md."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from tqdm.auto import tqdm

from bench.run import REPO, write_doc
from genie.config import load_config
from genie.records import read_records
from genie.tasks import get_task
from genie.training.run_setup import load_task_data

ARMS = {
    "none": [],
    "IB": ["regularizers.bottleneck=true"],
    "align": ["regularizers.alignment=infonce"],
    "both": ["regularizers.bottleneck=true", "regularizers.alignment=infonce"],
    "CAG": ["regularizers.alignment=cag"],
}
# A shorter schedule than `make train` (6000 tweets, 20 epochs), so 45 runs fit in about an hour
# and a half on two cores: the models are still learning, where a regularizer can show.
SCHEDULE = ["data.demo_train_tweets=4000", "train.epochs=10", "train.eval_every_epochs=2"]
DOC = REPO / "docs" / "regularizers.md"  # the page whose ablate markers hold the table


def markers(task: str) -> tuple[str, str]:
    return f"<!-- ablate:{task}:start -->", f"<!-- ablate:{task}:end -->"


def run_dir(out: Path, arm: str, noise: float, seed: int) -> Path:
    return out / f"{arm}_noise{round(noise * 100)}_seed{seed}"


def overrides(out: Path, arm: str, noise: float, seed: int, extra: list[str]) -> list[str]:
    return [*SCHEDULE, f"data.demo_dir={out / f'demo_noise{round(noise * 100)}'}", f"data.demo_noise_share={noise}",
            f"train.seed={seed}", f"train.output_dir={run_dir(out, arm, noise, seed)}", *ARMS[arm], *extra]


def train(config: Path, args: list[str], log: Path) -> None:
    """One `genie train` in its own process, one thread; its output in `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as handle:
        done = subprocess.run([sys.executable, "-m", "genie.cli", "train", "--config", str(config), *args],
                              stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise RuntimeError(f"a run failed (exit {done.returncode}); its log: {log}")


def summarise(out: Path, task: str, noises: list[float], seeds: list[int]) -> dict:
    """Per arm and noise share: the headline test F1 of each seed, their mean and spread."""
    headline = get_task(task).headline
    cells = {}
    for arm in ARMS:
        for noise in noises:
            runs = [json.loads((run_dir(out, arm, noise, s) / "test_metrics.json").read_text()) for s in seeds]
            scores = [run[headline]["f1"] for run in runs]
            cells[f"{arm}@{noise}"] = {"arm": arm, "noise": noise, "f1": scores, "mean": statistics.mean(scores),
                                       "sd": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                                       "all_f1": [{k: v["f1"] for k, v in run.items() if isinstance(v, dict)
                                                   and "f1" in v} for run in runs]}
    return {"task": task, "headline": headline, "seeds": seeds, "noise_shares": noises, "schedule": SCHEDULE,
            "cells": cells, "ungrounded_reference": {str(n): ungrounded_reference(out, task, n) for n in noises}}


def ungrounded_reference(out: Path, task: str, noise: float) -> float:
    """The headline F1 of the gold entities with every one "not in the image": what a model that
    reads the text perfectly and never grounds would score."""
    gold = read_records(out / f"demo_noise{round(noise * 100)}" / task / "test.jsonl")
    blind = [replace(r, entities=[replace(e, boxes=[]) for e in r.entities]) for r in gold]
    return get_task(task).evaluate(gold, blind)[get_task(task).headline]["f1"]


def table(results: dict) -> str:
    noises = results["noise_shares"]
    lines = ["| regularizer | " + " | ".join(f"{round(n * 100)} % noise images" for n in noises) + " |",
             "|---|" + "---|" * len(noises)]
    for arm in ARMS:
        cells = [results["cells"][f"{arm}@{n}"] for n in noises]
        lines.append(f"| {arm} | " + " | ".join(f"{c['mean']:.2f} ± {c['sd']:.2f}" for c in cells) + " |")
    reference = results["ungrounded_reference"]
    lines.append("| *reference: gold text, nothing grounded* | "
                 + " | ".join(f"*{reference[str(n)]:.2f}*" for n in noises) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make ablate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="gmner")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.3, 0.6], help="shares of noise images")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at a time")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "ablate", help="runs go to OUT/TASK/")
    parser.add_argument("--doc", type=Path, default=DOC,
                        help="the page whose ablate markers get the table (default: docs/regularizers.md)")
    parser.add_argument("--results", type=Path, help="default: bench/ablation_<task>.json")
    parser.add_argument("overrides", nargs="*", help="extra key=value for every run")
    args = parser.parse_args(argv)
    config = REPO / "configs" / f"{args.task}.yaml"
    out = args.out / args.task
    started = time.perf_counter()
    todo = [(arm, noise, seed) for arm in ARMS for noise in args.noise for seed in args.seeds
            if not (run_dir(out, arm, noise, seed) / "test_metrics.json").is_file()]
    for noise in dict.fromkeys(noise for _, noise, _ in todo):  # each demo built once, before runs share it
        cfg = load_config(config, overrides(out, "none", noise, args.seeds[0], args.overrides))
        load_task_data(cfg, get_task(args.task))
    total = len(ARMS) * len(args.noise) * len(args.seeds)
    if len(todo) < total:
        print(f"reusing {total - len(todo)} finished runs under {out}", file=sys.stderr)
    failed = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool, tqdm(total=len(todo), desc="ablate") as progress:
        jobs = [pool.submit(train, config, overrides(out, *cell, args.overrides),
                            run_dir(out, *cell).with_suffix(".log")) for cell in todo]
        for job in as_completed(jobs):
            if job.exception():
                failed.append(str(job.exception()))
            progress.update(1)
    if failed:
        print(f"{len(failed)} of {len(todo)} runs failed; the first: {failed[0]}", file=sys.stderr)
        return 1
    results = summarise(out, args.task, args.noise, args.seeds)
    results["seconds"] = time.perf_counter() - started
    target = args.results or REPO / "bench" / f"ablation_{args.task}.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    if all(marker in args.doc.read_text(encoding="utf-8") for marker in markers(args.task)):
        write_doc(args.doc, text, *markers(args.task))
    else:
        print(f"no {' / '.join(markers(args.task))} in {args.doc}: table not written there", file=sys.stderr)
    print(text)
    print(f"{results['seconds']:.0f} s; wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
