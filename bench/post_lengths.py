"""Decode time per post against the post's length (issue 35): one post at a time through the
Python API, posts of 10 to 10,000 words made of the checkpoint's own demo tweets run together
(words it writes mentions for), text only. The goal: time per output token flat within 2x from
10 to 10,000 words, since the model reads its source window and the grammar offers only the
words in it (a longer post is counted as `truncated_posts`).

    python -m bench.post_lengths [--checkpoint runs/mner/best] [--rounds 3]   -> bench/post_lengths.json

The checkpoint defaults to the one `make train TASK=mner` writes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from genie import Extractor
from genie.config import load_config
from genie.records import read_records

REPO = Path(__file__).resolve().parents[1]
LENGTHS = (10, 100, 1_000, 10_000)


def measure(checkpoint: Path, rounds: int) -> dict:
    extractor = Extractor.from_pretrained(checkpoint)
    demo = Path(load_config(checkpoint / "genie.yaml").data.demo_dir)
    task = extractor.cfg.tasks[0]
    words = [word for record in read_records(demo / task / "train.jsonl") for word in record.tokens]
    tokenizer = extractor.tokenizer
    rows = {}
    for length in LENGTHS:
        post = " ".join(words[:length])
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            result = extractor.predict([{"id": "1", "text": post}])
            seconds.append(time.perf_counter() - started)
        prediction = result[0]
        mentions = " [SEP] ".join(f"{e['text']} {e['type']}" for e in prediction["entities"])
        tokens = len(tokenizer(mentions)["input_ids"])  # about the output's length in tokens
        best = min(seconds)
        rows[length] = {"seconds": round(best, 4), "entities": len(prediction["entities"]),
                        "output_tokens": tokens, "seconds_per_output_token": round(best / max(tokens, 1), 5),
                        "truncated": result.summary.get("truncated_posts", 0)}
        print(length, rows[length], flush=True)
    per_token = [row["seconds_per_output_token"] for row in rows.values()]
    return {"checkpoint": str(checkpoint), "rounds": rounds, "rows": rows,
            "per_token_spread": round(max(per_token) / min(per_token), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "runs" / "mner" / "best")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "post_lengths.json")
    args = parser.parse_args()
    results = measure(args.checkpoint, args.rounds)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"per output token, longest over shortest: {results['per_token_spread']}x; wrote {args.out}")


if __name__ == "__main__":
    main()
