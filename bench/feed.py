"""Prediction at the scale of a feed (issue 35): `genie predict` over files of synthetic posts,
each size in its own process, as a user runs it: posts per second and peak memory (max RSS).
`genie predict` reads, decodes and writes `decode.chunk_size` posts at a time, so both should be
flat in the file's size: the goals are posts/s within 1.2x and peak RSS within 1.5x from 10,000 to
1,000,000 posts. Also the start-up: `genie predict` on one post against
`python -c "import torch, transformers"` (goal: 1.5x).

The checkpoint is a tiny MNER model with index targets trained briefly on the demo (the fastest
decoding genie has, so that a million posts take minutes); posts are 6 to 14 words of its demo
tweets run together, text only, one per line.

    python -m bench.feed [--sizes 10000 1000000] [--work DIR]   -> bench/feed.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOALS = {"posts_per_second": 1.2, "peak_rss": 1.5, "start_up": 1.5}


def train_feed_model(out: Path) -> Path:
    """The tiny MNER index checkpoint (about half a minute); its folder `best`."""
    from genie.config import load_config
    from genie.training.run import train

    cfg = load_config(REPO / "configs" / "mner.yaml", [
        "target_format=index", f"train.output_dir={out / 'run'}", f"data.demo_dir={out / 'demo'}", "train.epochs=2",
        "train.eval_every_epochs=2", "train.resume=false"])
    train(cfg)
    return out / "run" / "best"


def write_posts(path: Path, n: int, words: list[str], seed: int = 0) -> None:
    """`n` posts of plain text, 6 to 14 of `words` each, written in blocks."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, n, 10_000):
            handle.write("".join(" ".join(rng.choices(words, k=rng.randint(6, 14))) + "\n"
                                 for _ in range(min(10_000, n - start))))


def timed_process(command: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, stdout) of one process run to its end."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode})")
    return time.perf_counter() - started, round(usage.ru_maxrss / 1024), out


def predict_command(checkpoint: Path, posts: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "genie.cli", "predict", "--checkpoint", str(checkpoint), "--input", str(posts),
            "--output", str(out)]


def measure(sizes: list[int], work: Path) -> dict:
    from genie.records import read_records

    checkpoint = train_feed_model(work)
    words = [w for r in read_records(work / "demo" / "mner" / "train.jsonl") for w in r.tokens]
    rows = {}
    for n in sizes:
        posts, out = work / f"posts_{n}.txt", work / f"preds_{n}.jsonl"
        write_posts(posts, n, words)
        seconds, rss, stdout = timed_process(predict_command(checkpoint, posts, out))
        summary = json.loads(stdout)
        rows[n] = {"posts": summary["posts"], "seconds": round(seconds, 1), "peak_rss_mb": rss,
                   "posts_per_second": round(n / seconds, 1), "decode_posts_per_second": summary["records_per_second"],
                   "entities": sum(line.count('"char_start"') for line in open(out, encoding="utf-8"))}
        print(n, rows[n], file=sys.stderr, flush=True)
        out.unlink()
        posts.unlink()
    small, large = rows[min(sizes)], rows[max(sizes)]
    one = work / "one.txt"
    one.write_text("Obama visits Paris\n", encoding="utf-8")
    runs = []
    for _ in range(3):  # the best of three, as for the imports
        (work / "one.jsonl").unlink(missing_ok=True)
        runs.append(timed_process(predict_command(checkpoint, one, work / "one.jsonl"))[0])
    start = min(runs)
    imports = min(timed_process([sys.executable, "-c", "import torch, transformers"])[0] for _ in range(3))
    return {"rows": {str(n): row for n, row in rows.items()}, "goals": GOALS,
            # the rate once the model is loaded (the summary's), so that start-up does not favour the large file
            "posts_per_second_ratio": round(small["decode_posts_per_second"] / large["decode_posts_per_second"], 2),
            "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
            "start_up": {"predict_one_post_seconds": round(start, 2), "import_torch_transformers_seconds":
                         round(imports, 2), "ratio": round(start / imports, 2)},
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 1_000_000])
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "feed.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genie-feed-") as tmp:
        result = measure(args.sizes, args.work or Path(tmp))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))


if __name__ == "__main__":
    main()
