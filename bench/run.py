"""`make bench`: genie's data path against the published systems', measured in one run on this
machine, on the same data with the same model on both sides.

1. feature loading: the memory-mapped store vs one .npz per example (10,000 images, 36 x 2048);
2. training throughput: length-grouped dynamic padding vs fixed padding to 200 tokens, on the
   GMNER v2.0 length distribution, at tiny and base-like model sizes, and bf16 autocast vs fp32;
3. decoding throughput: length-sorted batches vs one example at a time, and bf16 vs fp32; and
   grammar-constrained index decoding vs the backbone's own greedy `generate` (bench/index_decoding.py);
4. the fraction of this machine's matmul peak (the faster of fp32 and bf16, measured here) a
   base-like training step reaches;
5. a real backbone: genie's MiniLM BERT2BERT training tokens/s against the same encoder's BIO
   tagger, and against the bf16 matmul peak (bench/minilm_speed.py; needs the Twitter-2017 release);
6. a feed: `genie predict` on 10,000 and 1,000,000 posts (posts/s and peak memory), its start-up
   against importing torch and transformers (bench/feed.py), and decode time per output token
   against a post's length, 10 to 10,000 words (bench/post_lengths.py).

Each case runs in a fresh process, so the peak memory (max RSS) beside it is its own. Writes
`bench/results.json`, the table between the bench markers in docs/speed.md, and the ratios alone
between README's summary markers."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_GMNER = Path(os.environ.get("GENIE_SHARED_DATASETS", REPO.parent / "shared" / "datasets")) \
    / "twitter-gmner" / "Twitter10000_v2.0"
LENGTHS_FILE = REPO / "bench" / "gmner_lengths.json"
DOC = REPO / "docs" / "speed.md"  # the page whose bench markers hold the table
BENCH_START, BENCH_END = "<!-- bench:start -->", "<!-- bench:end -->"
README = REPO / "README.md"  # its summary markers hold the ratios alone
SUMMARY_START, SUMMARY_END = "<!-- bench-summary:start -->", "<!-- bench-summary:end -->"
PUBLISHED_WIDTH = 200  # the published code pads every source to 200 tokens
VINVL_BOXES, VINVL_DIM = 36, 2048
SIZES = {  # T5 architecture; base-like has BART-base's width and depth (768, 6 + 6 layers, 12 heads)
    "tiny": {"model.d_model": 64, "model.layers": 2, "model.heads": 4, "model.d_ff": 256},
    "base-like": {"model.d_model": 768, "model.layers": 6, "model.heads": 12, "model.d_ff": 3072},
}


def in_child(case, **kwargs) -> dict:
    """Run `case(**kwargs)` in a fresh process; its result plus that process's peak RSS."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_measured, case, kwargs).result()


def _measured(case, kwargs: dict) -> dict:
    result = case(**kwargs)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


# --- 1. feature loading ---------------------------------------------------------------------------

def write_vinvl_folder(folder: Path, n: int, seed: int = 0) -> list[str]:
    """n synthetic VinVL files (`<id>.jpg.npz`, 36 boxes x 2048, float32, uncompressed)."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"{k:06d}" for k in range(n)]
    for image_id in tqdm(ids, desc="write npz", leave=False):
        corner = rng.uniform(0, 400, (VINVL_BOXES, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(10, 200, (VINVL_BOXES, 2))], 1)
        np.savez(folder / f"{image_id}.jpg.npz", box_features=rng.random((VINVL_BOXES, VINVL_DIM), np.float32),
                 bounding_boxes=boxes.astype(np.float32), image_h=np.int64(600), image_w=np.int64(800),
                 num_boxes=np.int64(VINVL_BOXES))
    return ids


def read_published(folder: str, ids: list[str]) -> dict:
    """The published loaders: np.load of the example's file inside `__getitem__`."""
    started = time.perf_counter()
    for image_id in ids:
        with np.load(Path(folder) / f"{image_id}.jpg.npz") as data:
            features, boxes = data["box_features"][:VINVL_BOXES], data["bounding_boxes"][:VINVL_BOXES]
            assert features.shape == (VINVL_BOXES, VINVL_DIM) and boxes.shape == (VINVL_BOXES, 4)
    return {"seconds": time.perf_counter() - started}


def read_genie(directory: str, ids: list[str]) -> dict:
    """genie's `FeatureSource` over an npz folder or a store (opening and checksum timed apart)."""
    from genie.regions.source import FeatureSource

    started = time.perf_counter()
    source = FeatureSource(directory, VINVL_BOXES, VINVL_DIM)
    opened = time.perf_counter()
    for image_id in ids:
        assert source.get(image_id).features.shape == (VINVL_BOXES, VINVL_DIM)
    return {"open_seconds": opened - started, "seconds": time.perf_counter() - opened}


def build_store_case(src: str, out: str, dtype: str) -> dict:
    from genie.regions.store import build_store

    started = time.perf_counter()
    build_store(Path(src), Path(out), max_regions=VINVL_BOXES, dtype=dtype)
    size = sum(f.stat().st_size for f in Path(out).iterdir())
    return {"seconds": time.perf_counter() - started, "bytes": size}


def bench_features(work: Path, n: int) -> dict:
    folder, store = work / "npz", work / "store"
    started = time.perf_counter()
    ids = write_vinvl_folder(folder, n)
    written = time.perf_counter() - started
    order = ids[:]
    random.Random(0).shuffle(order)  # an epoch's order
    npz_bytes = sum(f.stat().st_size for f in folder.iterdir())
    published = in_child(read_published, folder=str(folder), ids=order)
    genie_npz = in_child(read_genie, directory=str(folder), ids=order)
    built = in_child(build_store_case, src=str(folder), out=str(store), dtype="float16")
    stored = in_child(read_genie, directory=str(store), ids=order)
    per = {name: r["seconds"] / n * 1e6 for name, r in
           (("published", published), ("genie_npz", genie_npz), ("store", stored))}
    return {"images": n, "boxes": VINVL_BOXES, "dim": VINVL_DIM, "npz_bytes": npz_bytes, "write_seconds": written,
            "us_per_example": per, "store_build_seconds": built["seconds"], "store_bytes": built["bytes"],
            "store_open_and_verify_seconds": stored["open_seconds"],
            "peak_rss_mb": {"published": published["peak_rss_mb"], "genie_npz": genie_npz["peak_rss_mb"],
                            "store_build": built["peak_rss_mb"], "store": stored["peak_rss_mb"]},
            "ratio": per["published"] / per["store"]}


# --- 2 and 4. training throughput, matmul peak ---------------------------------------------------

def gmner_records() -> tuple[list, str]:
    """The real GMNER v2.0 train tweets, or demo tweets stretched to lengths drawn from the real
    distribution (`bench/gmner_lengths.json`) when the release is absent."""
    from genie.tasks import get_task

    if SHARED_GMNER.is_dir():
        return get_task("gmner").builder(SHARED_GMNER, "train").records, "real GMNER v2.0 train tweets"
    from genie.demo import build_demo
    from genie.records import read_records

    histogram = json.loads(LENGTHS_FILE.read_text())["words"]
    work = Path(tempfile.mkdtemp(prefix="genie-bench-demo-"))
    build_demo(work, get_task("gmner").demo, n_train=7000)
    records = read_records(work / "train.jsonl")
    shutil.rmtree(work)
    rng = random.Random(0)
    lengths = rng.choices([int(k) for k in histogram], weights=list(histogram.values()), k=len(records))
    filler = ["the", "a", "to", "and", "of", "is", "in", "on", "at", "for", "with", "my", "this", "that", "it"]
    for record, length in zip(records, lengths):
        keep = max([length] + [e.end for e in record.entities])
        record.tokens = (record.tokens + [rng.choice(filler) for _ in range(length)])[:keep]
    return records, "demo tweets with GMNER v2.0 lengths (bench/gmner_lengths.json)"


def train_throughput(size: str, mode: str, examples: int, batch_size: int, count_flops: bool = False,
                     workers: int = 0, precision: str = "no") -> dict:
    """One epoch over the same `examples` tweets: `fixed` pads sources to 200 tokens in random
    batches (published), `dynamic` pads to the batch's longest, `grouped` adds length grouping;
    `workers` DataLoader processes build the batches; `precision` bf16 autocasts the forward and
    backward as `train.mixed_precision=bf16` does (weights and optimizer stay fp32)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from genie.config import load_config
    from genie.data import Collator, GenieDataset
    from genie.model.targets import make_targets
    from genie.regions.source import FeatureSource
    from genie.tasks import get_task
    from genie.training.run import build_optimizer, train_loader
    from genie.training.run_setup import TaskData, build_model

    torch.manual_seed(0)
    records, source = gmner_records()
    overrides = [f"{k}={v}" for k, v in SIZES[size].items()] + [
        f"features.max_regions={VINVL_BOXES}", f"features.dim={VINVL_DIM}", "features.on_missing=zeros",
        f"train.batch_size={batch_size}", f"data.group_by_length={mode == 'grouped'}", f"data.num_workers={workers}",
        "model.max_source_length=200", "model.vocab_size=4000", f"train.mixed_precision={precision}"]
    cfg = load_config(REPO / "configs" / "gmner.yaml", overrides)
    task = get_task("gmner")
    features = FeatureSource(None, VINVL_BOXES, VINVL_DIM, "zeros")  # the compute is that of 36 regions
    tokenizer, model = build_model(cfg, [TaskData(task, {"train": records}, {"train": None}, features)])
    subset = random.Random(0).sample(records, examples)
    targets = make_targets("text", task, tokenizer, cfg.model.max_source_length, cfg.model.max_target_length)
    dataset = GenieDataset(subset, targets, features)
    for i in range(len(dataset)):  # tokenise once, outside the timing (the same in every mode)
        dataset[i]
    collate = Collator(tokenizer.pad_token_id, 8 if precision != "no" else 1)  # as the trainer pads
    if mode == "fixed":
        collate = FixedWidth(collate, tokenizer.pad_token_id)
    loader = train_loader(cfg, [dataset], collate)
    optimizer = build_optimizer(model, cfg)
    model.train()

    def step(batch) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    step(next(iter(loader)))  # warm-up, untimed
    times, widths = [], []
    for batch in loader:
        started = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - started)
        widths.append(batch["input_ids"].shape[1])
    result = {"data": source, "examples_per_second": examples / sum(times), "seconds": sum(times),
              "batches": len(times), "mean_source_width": statistics.mean(widths),
              "parameters": sum(p.numel() for p in model.parameters())}
    if count_flops:  # the first batches again, counted (the counter slows them, so they are timed above)
        counted = min(3, len(times))
        with FlopCounterMode(display=False) as counter:
            for _, batch in zip(range(counted), loader):
                step(batch)
        result["flops_per_second"] = counter.get_total_flops() / sum(times[:counted])
    return result


class FixedWidth:
    """The published collation: every source padded to 200 tokens (picklable for workers)."""

    def __init__(self, collate, pad_token_id: int):
        self.collate, self.pad_token_id = collate, pad_token_id

    def __call__(self, items: list[dict]) -> dict:
        import torch.nn.functional as F

        batch = self.collate(items)
        extra = PUBLISHED_WIDTH - batch["input_ids"].shape[1]
        batch["input_ids"] = F.pad(batch["input_ids"], (0, extra), value=self.pad_token_id)
        batch["attention_mask"] = F.pad(batch["attention_mask"], (0, extra), value=0)
        return batch


def matmul_peak(dtype: str = "float32", n: int = 2048, repeats: int = 10) -> dict:
    """The best `dtype` matmul rate of this machine with torch's default threads."""
    import torch

    a, b = torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return {"flops_per_second": 2 * n**3 / best, "threads": torch.get_num_threads(), "size": n, "dtype": dtype}


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_training(quick: bool) -> dict:
    plans = {"tiny": (256 if quick else 1024, 32), "base-like": (16 if quick else 48, 8)}
    out = {}
    for size, (examples, batch_size) in plans.items():
        rows = {mode: in_child(train_throughput, size=size, mode=mode, examples=examples, batch_size=batch_size,
                               count_flops=size == "base-like" and mode == "grouped")
                for mode in ("fixed", "dynamic", "grouped")}
        if size == "tiny":  # where batch building weighs most against the step
            rows["grouped, 1 worker"] = in_child(train_throughput, size=size, mode="grouped", examples=examples,
                                                 batch_size=batch_size, workers=1)
        rows["grouped, bf16"] = in_child(train_throughput, size=size, mode="grouped", examples=examples,
                                         batch_size=batch_size, count_flops=size == "base-like", precision="bf16")
        out[size] = {"examples": examples, "batch_size": batch_size, "rows": rows,
                     "ratio": rows["grouped"]["examples_per_second"] / rows["fixed"]["examples_per_second"],
                     "bf16_ratio": rows["grouped, bf16"]["examples_per_second"] / rows["grouped"]["examples_per_second"]}
    return out


# --- 3. decoding throughput ----------------------------------------------------------------------

def train_decode_model(out: str, quick: bool) -> dict:
    """A tiny GMNER model trained briefly on the demo (about a minute, test GMNER F1 near 40):
    it writes and ends its sequences as a trained model does, which an untrained one does not."""
    from genie.config import load_config
    from genie.training.run import train

    cfg = load_config(REPO / "configs" / "gmner.yaml", [
        f"train.output_dir={out}/run", f"data.demo_dir={out}/demo", "data.demo_train_tweets=3000",
        f"train.epochs={1 if quick else 6}", "train.eval_every_epochs=6", "train.resume=false"])
    started = time.perf_counter()
    metrics = train(cfg)
    return {"seconds": time.perf_counter() - started, "test_f1": metrics["gmner"]["f1"]}


def decode_throughput(out: str, mode: str, precision: str = "no") -> dict:
    """`one`: one example at a time (published); `batched`: genie's length-sorted batches of 100;
    `unsorted`: batches of 100 in file order; `precision` bf16: decoded under bf16 autocast, as a
    bf16-trained checkpoint decodes."""
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    from genie.config import load_config
    from genie.data import Collator, GenieDataset
    from genie.inference.decode import decode_loader, predict
    from genie.model.modeling import GenieModel
    from genie.model.targets import make_targets
    from genie.records import read_records
    from genie.tasks import get_task
    from genie.training.run_setup import feature_source, task_features_dir

    best = Path(out) / "run" / "best"
    cfg = load_config(best / "genie.yaml")
    task = get_task("gmner")
    tokenizer = AutoTokenizer.from_pretrained(best)
    records = read_records(Path(out) / "demo" / "gmner" / "test.jsonl")
    targets = make_targets("text", task, tokenizer, cfg.model.max_source_length, cfg.model.max_target_length)
    dataset = GenieDataset(records, targets, feature_source(cfg, task_features_dir(cfg, task)))
    for i in range(len(dataset)):
        dataset[i]
    accelerator = Accelerator(cpu=True, mixed_precision=precision)
    model = accelerator.prepare(GenieModel.from_pretrained(best))
    if mode == "batched":
        loader = decode_loader(dataset, cfg.decode.batch_size)
    else:
        loader = DataLoader(dataset, batch_size=1 if mode == "one" else cfg.decode.batch_size,
                            collate_fn=Collator(tokenizer.pad_token_id))
    loader, seconds = accelerator.prepare(loader), []
    for _ in range(3):  # the best of three: a pass of the batched modes takes about a second
        with torch.inference_mode():
            started = time.perf_counter()
            predictions, _ = predict(accelerator, model, dataset, loader, cfg.decode)
            seconds.append(time.perf_counter() - started)
    seconds = min(seconds)
    return {"records_per_second": len(records) / seconds, "seconds": seconds, "records": len(records),
            "gmner_f1": task.evaluate(records, predictions)["gmner"]["f1"]}


def bench_decoding(work: Path, quick: bool) -> dict:
    from bench.index_decoding import measure  # it reads this module's sizes

    trained = in_child(train_decode_model, out=str(work), quick=quick)
    rows = {mode: in_child(decode_throughput, out=str(work), mode=mode) for mode in ("one", "unsorted", "batched")}
    rows["batched, bf16"] = in_child(decode_throughput, out=str(work), mode="batched", precision="bf16")
    return {"model": trained, "rows": rows, "index": in_child(measure, size="tiny" if quick else "base-like"),
            "ratio": rows["batched"]["records_per_second"] / rows["one"]["records_per_second"],
            "bf16_ratio": rows["batched, bf16"]["records_per_second"] / rows["batched"]["records_per_second"]}


def bench_minilm(quick: bool) -> dict:
    from bench.minilm_speed import available, compare

    missing = available()
    if missing:
        print(f"  skipped: {missing}", file=sys.stderr)
        return {"skipped": missing}
    return in_child(compare, examples=32 if quick else 160, rounds=1 if quick else 3)


def bench_feed(work: Path, quick: bool) -> dict:
    """The feed rows; post lengths with step 3's GMNER model (text targets, constrained: the
    grammar whose work could grow with the post)."""
    from bench.feed import measure
    from bench.post_lengths import measure as by_length

    feed = in_child(measure, sizes=[1_000, 10_000] if quick else [10_000, 1_000_000], work=work / "feed")
    lengths = in_child(by_length, checkpoint=work / "decoding" / "run" / "best", rounds=1 if quick else 3)
    return {**feed, "post_lengths": lengths}


# --- report --------------------------------------------------------------------------------------

def table(results: dict) -> str:
    f, t, d, p = results["features"], results["training"], results["decoding"], results["peak"]
    us, mb = f["us_per_example"], f["peak_rss_mb"]
    lines = ["| measure | baseline (published way) | genie | ratio | peak memory (baseline / genie) |",
             "|---|---|---|---|---|",
             (f"| feature loading, {f['images']:,} images of {f['boxes']} x {f['dim']} | one .npz per example: "
             f"{us['published']:.0f} us | float16 store: {us['store']:.0f} us | **{f['ratio']:.1f}x** | "
             f"{mb['published']} / {mb['store']} MB |")]
    for size, row in t.items():
        fixed, grouped = row["rows"]["fixed"], row["rows"]["grouped"]
        lines.append(
            f"| training, {size} ({fixed['parameters'] / 1e6:.1f} M parameters), batch {row['batch_size']} | "
            f"padded to 200: {fixed['examples_per_second']:.1f} ex/s | length-grouped dynamic padding: "
            f"{grouped['examples_per_second']:.1f} ex/s (random batches, dynamic: "
            f"{row['rows']['dynamic']['examples_per_second']:.1f}{_workers(row['rows'])}) | **{row['ratio']:.2f}x** | "
            f"{fixed['peak_rss_mb']} / {grouped['peak_rss_mb']} MB |")
    one, batched = d["rows"]["one"], d["rows"]["batched"]
    lines.append(f"| decoding, tiny GMNER model, {one['records']} tweets | one at a time: "
                 f"{one['records_per_second']:.1f} tweets/s | length-sorted batches: "
                 f"{batched['records_per_second']:.1f} tweets/s (unsorted: "
                 f"{d['rows']['unsorted']['records_per_second']:.1f}) | **{d['ratio']:.1f}x** | "
                 f"{one['peak_rss_mb']} / {batched['peak_rss_mb']} MB |")
    for size, row in t.items():
        plain, bf16 = row["rows"]["grouped"], row["rows"]["grouped, bf16"]
        lines.append(f"| training, {size}, bf16 autocast vs fp32 (length-grouped) | fp32: "
                     f"{plain['examples_per_second']:.1f} ex/s | bf16: {bf16['examples_per_second']:.1f} ex/s | "
                     f"**{row['bf16_ratio']:.2f}x** | {plain['peak_rss_mb']} / {bf16['peak_rss_mb']} MB |")
    plain, bf16 = d["rows"]["batched"], d["rows"]["batched, bf16"]
    lines.append(f"| decoding, tiny GMNER model, bf16 autocast vs fp32 (sorted batches) | fp32: "
                 f"{plain['records_per_second']:.1f} tweets/s | bf16: {bf16['records_per_second']:.1f} tweets/s | "
                 f"**{d['bf16_ratio']:.2f}x** | {plain['peak_rss_mb']} / {bf16['peak_rss_mb']} MB |")
    index = d["index"]
    lines.append(f"| index decoding, {index['size']} GMNER model, greedy, {index['tweets']} tweets x {index['steps']} "
                 f"steps | the backbone's `generate` (text, greedy): {index['hf_tweets_per_second']:.1f} tweets/s | "
                 f"grammar-constrained pointers: {index['genie_tweets_per_second']:.1f} tweets/s | "
                 f"**{index['ratio']:.2f}x** | {index['peak_rss_mb']} MB |")
    best = max(p.values(), key=lambda peak: peak["flops_per_second"])
    rates = "; ".join(f"{dtype}: {peak['flops_per_second'] / 1e9:.0f}" for dtype, peak in p.items())
    steps = "; ".join(f"{name}: {t['base-like']['rows'][row]['flops_per_second'] / 1e9:.1f}"
                      for name, row in (("fp32", "grouped"), ("bf16", "grouped, bf16")))
    lines.append(f"| base-like training step vs the best matmul peak ({best['dtype']}, GFLOP/s {rates}, "
                 f"{best['threads']} threads) | | GFLOP/s {steps} | **{results['peak_fraction']:.0%}** of peak | |")
    lines.append(minilm_row(results["minilm"]))
    lines.extend(feed_rows(results["feed"]))
    return "\n".join(lines)


def feed_rows(f: dict) -> list[str]:
    """The feed rows, each with its goal (issue 35)."""
    (small, a), (large, b) = sorted(f["rows"].items(), key=lambda item: int(item[0]))
    start, goals, lengths = f["start_up"], f["goals"], f["post_lengths"]["rows"]
    shortest, longest = lengths[min(lengths, key=int)], lengths[max(lengths, key=int)]
    return [
        f"| `genie predict`, tiny MNER index model, {int(small):,} vs {int(large):,} posts (goal: within "
        f"{goals['posts_per_second']}x; posts/s once the model is loaded) | {int(small):,}: "
        f"{a['decode_posts_per_second']:,.0f} posts/s | {int(large):,}: {b['decode_posts_per_second']:,.0f} posts/s | "
        f"**{f['posts_per_second_ratio']:.2f}x** | "
        f"{a['peak_rss_mb']} / {b['peak_rss_mb']} MB |",
        f"| `genie predict` peak memory, {int(small):,} vs {int(large):,} posts (goal: within {goals['peak_rss']}x) "
        f"| {a['peak_rss_mb']} MB | {b['peak_rss_mb']} MB | **{f['peak_rss_ratio']:.2f}x** | |",
        f"| start-up: `genie predict` on one post vs `python -c \"import torch, transformers\"` (goal: "
        f"{goals['start_up']}x) | {start['import_torch_transformers_seconds']:.1f} s | "
        f"{start['predict_one_post_seconds']:.1f} s | **{start['ratio']:.2f}x** | |",
        f"| decode time per output token, a post of {max(lengths, key=int)} words vs {min(lengths, key=int)} "
        f"(goal: within 2x) | {shortest['seconds_per_output_token'] * 1000:.2f} ms | "
        f"{longest['seconds_per_output_token'] * 1000:.2f} ms | **{f['post_lengths']['per_token_spread']:.2f}x** | |"]


def minilm_row(m: dict) -> str:
    if "skipped" in m:
        return f"| MiniLM BERT2BERT training vs the same encoder's BIO tagger | skipped: {m['skipped']} | | | |"
    rows = m["rows"]
    tagger, index, text = rows["tagger (same encoder)"], rows["genie index"], rows["genie text"]
    return (f"| MiniLM BERT2BERT training, {m['examples']} Twitter-2017 tweets, batch {m['batch_size']}, bf16, "
            f"text only | the same encoder's BIO tagger: {tagger['tokens_per_second']:,.0f} source tokens/s "
            f"({tagger['of_bf16_peak']:.0%} of the bf16 matmul peak) | index targets: "
            f"{index['tokens_per_second']:,.0f} tokens/s ({index['of_bf16_peak']:.0%} of peak); text targets: "
            f"{text['tokens_per_second']:,.0f} ({text['of_bf16_peak']:.0%}) | **{index['vs_tagger']:.2f}x** "
            f"(text {text['vs_tagger']:.2f}x) | {m['peak_rss_mb']} MB |")


def summary(results: dict) -> str:
    """README's short table: each ratio and what it compares."""
    t, d = results["training"], results["decoding"]
    rows = [("feature loading: float16 store vs one .npz per example", f"{results['features']['ratio']:.1f}x"),
            *((f"training, {size}: length-grouped dynamic padding vs padding to 200", f"{row['ratio']:.2f}x")
              for size, row in t.items()),
            ("decoding: length-sorted batches vs one tweet at a time", f"{d['ratio']:.1f}x"),
            *((f"training, {size}: bf16 autocast vs fp32", f"{row['bf16_ratio']:.2f}x") for size, row in t.items()),
            ("decoding, tiny: bf16 autocast vs fp32", f"{d['bf16_ratio']:.2f}x"),
            (f"index decoding, {d['index']['size']}: grammar-constrained pointers vs the backbone's greedy `generate`",
             f"{d['index']['ratio']:.2f}x"),
            ("base-like training step vs the best (bf16 or fp32) matmul peak", f"{results['peak_fraction']:.0%}")]
    feed = results["feed"]
    rows += [("`genie predict` posts/s, 10,000 vs 1,000,000 posts (goal 1.2x)", f"{feed['posts_per_second_ratio']:.2f}x"),
             ("`genie predict` peak memory, 1,000,000 vs 10,000 posts (goal 1.5x)", f"{feed['peak_rss_ratio']:.2f}x"),
             ("start-up of `genie predict` vs importing torch and transformers (goal 1.5x)",
              f"{feed['start_up']['ratio']:.2f}x")]
    if "rows" in results["minilm"]:
        index = results["minilm"]["rows"]["genie index"]
        rows += [("MiniLM BERT2BERT training (index targets) vs the same encoder's BIO tagger, tokens/s",
                  f"{index['vs_tagger']:.2f}x"),
                 ("MiniLM BERT2BERT training (index targets) vs the bf16 matmul peak", f"{index['of_bf16_peak']:.0%}")]
    return "\n".join(["| measure (`make bench`) | genie |", "|---|---|", *(f"| {m} | **{r}** |" for m, r in rows)])


def peak_fraction(results: dict) -> float:
    """The faster base-like training step (fp32 or bf16) against the faster matmul (fp32 or bf16):
    how close genie gets to what this machine can do at all."""
    rows = results["training"]["base-like"]["rows"]
    step = max(rows["grouped"]["flops_per_second"], rows["grouped, bf16"]["flops_per_second"])
    return step / max(peak["flops_per_second"] for peak in results["peak"].values())


def _workers(rows: dict) -> str:
    worker = rows.get("grouped, 1 worker")
    return f"; grouped with 1 worker process: {worker['examples_per_second']:.1f}" if worker else ""


def write_doc(doc: Path, text: str, start_marker: str = BENCH_START, end_marker: str = BENCH_END) -> None:
    """Replace what stands between the two markers in a docs page."""
    content = doc.read_text(encoding="utf-8")
    start, end = content.index(start_marker) + len(start_marker), content.index(end_marker)
    doc.write_text(content[:start] + "\n" + text + "\n" + content[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    parser.add_argument("--doc", type=Path, default=DOC,
                        help="the page whose bench markers get the table (default: docs/speed.md)")
    parser.add_argument("--readme", type=Path, default=README, help="the page whose summary markers get the ratios")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the bench runs, not speed")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="genie-bench-"))
    started = time.perf_counter()
    try:
        results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                               "platform": platform.platform()}}
        print("1/6 feature loading", file=sys.stderr)
        results["features"] = bench_features(work / "features", args.images)
        shutil.rmtree(work / "features")
        print("2/6 training throughput", file=sys.stderr)
        results["training"] = bench_training(args.quick)
        print("3/6 decoding throughput", file=sys.stderr)
        results["decoding"] = bench_decoding(work / "decoding", args.quick)
        print("4/6 matmul peak", file=sys.stderr)
        results["peak"] = {dtype: in_child(matmul_peak, dtype=dtype) for dtype in ("float32", "bfloat16")}
        results["peak_fraction"] = peak_fraction(results)
        print("5/6 MiniLM training against the same encoder's tagger", file=sys.stderr)
        results["minilm"] = bench_minilm(args.quick)
        print("6/6 a feed: posts/s and memory at two sizes, start-up, post length", file=sys.stderr)
        results["feed"] = bench_feed(work, args.quick)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_doc(args.doc, table(results))
    write_doc(args.readme, summary(results), SUMMARY_START, SUMMARY_END)
    print(table(results))
    print(f"{results['seconds']:.0f} s; wrote {args.out}, the table in {args.doc} and the ratios in {args.readme}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
