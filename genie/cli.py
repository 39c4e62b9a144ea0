"""`genie convert | train | decode | evaluate`: user mistakes print one line, exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from genie.errors import GenieError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genie", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="raw dataset release -> genie record JSONL")
    convert.add_argument("--task", required=True)
    convert.add_argument("--source", required=True, type=Path, help="the release folder")
    convert.add_argument("--split", required=True)
    convert.add_argument("--out", required=True, type=Path)
    convert.add_argument("--xml", type=Path, help="fmnerg: the Twitter10000_v2.0/xml folder of boxes, "
                                                  "when it is not <source>/xml")

    train = commands.add_parser("train", help="train, select on dev, decode and score test")
    train.add_argument("--config", type=Path, help="YAML config (configs/<task>.yaml)")
    train.add_argument("--model", help="tiny-t5, tiny-bart, a Hugging Face name or a local save_pretrained "
                                       "folder (same as model.name=...)")
    train.add_argument("overrides", nargs="*", metavar="key=value")

    decode = commands.add_parser("decode", help="batch-decode records to prediction JSONL")
    decode.add_argument("--checkpoint", required=True, type=Path, help="a run's best/ folder")
    decode.add_argument("--input", required=True, type=Path)
    decode.add_argument("--output", required=True, type=Path)
    decode.add_argument("--features", help="region-feature folder (default: the one used in training)")
    decode.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. decode.num_beams=4")

    evaluate = commands.add_parser("evaluate", help="score predictions against gold records")
    evaluate.add_argument("--task", required=True)
    evaluate.add_argument("--gold", required=True, type=Path)
    evaluate.add_argument("--pred", required=True, type=Path)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args)
    except GenieError as exc:
        print(f"genie: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genie: interrupted", file=sys.stderr)
        return 130


def _convert(args) -> int:
    from data_builders import BUILDERS
    from genie.records import write_records

    if args.task not in BUILDERS:
        raise GenieError(f"no data builder for task '{args.task}' (known: {', '.join(sorted(BUILDERS))})")
    if args.xml and args.task != "fmnerg":
        raise GenieError("--xml applies to --task fmnerg only")
    result = BUILDERS[args.task](args.source, args.split, **({"xml": args.xml} if args.xml else {}))
    n = write_records(args.out, result.records)
    print(json.dumps({"out": str(args.out), "records": n, **result.counts}))
    return 0


def _train(args) -> int:
    from genie.config import load_config
    from genie.train import train

    overrides = [*args.overrides, *([f"model.name={args.model}"] if args.model else [])]
    metrics = train(load_config(args.config, overrides))
    print(json.dumps(metrics, indent=2))
    return 0


def _decode(args) -> int:
    from genie.decode import decode_file

    stats = decode_file(args.checkpoint, args.input, args.output, args.features, args.overrides)
    print(json.dumps(stats))
    return 0


def _evaluate(args) -> int:
    from genie.records import read_records
    from genie.tasks import get_task

    task = get_task(args.task)
    print(json.dumps(task.evaluate(read_records(args.gold), read_records(args.pred)), indent=2))
    return 0


COMMANDS = {"convert": _convert, "train": _train, "decode": _decode, "evaluate": _evaluate}

if __name__ == "__main__":
    sys.exit(main())
