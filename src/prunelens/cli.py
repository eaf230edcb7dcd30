"""Command line: a thin shell over the Python API (``prunelens --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .data import DataError
from .layout import LayoutError
from .models import DEFAULT_MODEL, ModelLoadError
from .store import RunError

EXPECTED_ERRORS = (DataError, LayoutError, ModelLoadError, RunError, ValueError, FileNotFoundError)


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"embedded name ({DEFAULT_MODEL}), Hugging Face id or local directory")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="gsm-symbolic",
                        help="gsm-symbolic, gsm8k:PATH or jsonl:PATH (id, question, reasoning, answer)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many examples")
    parser.add_argument("--seed", type=int, default=0, help="seed for generated data and random orders")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad input lines and examples (reporting how many) instead of stopping")


def _load(args) -> tuple:
    from .data import load_examples
    from .models import load_model

    skipped: list[str] = []
    examples = load_examples(args.data, args.limit, args.seed, args.skip_bad, skipped)
    for message in skipped:
        print(f"skipped: {message}", file=sys.stderr)
    if skipped:
        print(f"skipped {len(skipped)} bad line(s) of {args.data}", file=sys.stderr)
    return load_model(args.model, args.device), examples


def cmd_info(args) -> None:
    from .models import load_model

    info = load_model(args.model, args.device).info()
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")


def cmd_prune(args) -> None:
    from .pruning import prune_examples

    model, examples = _load(args)
    summary = prune_examples(model, examples, args.out, args.method, args.objective, args.keep_ratio,
                             args.seed, args.shard, args.skip_bad, max_batch=args.max_batch)
    for message in summary["skipped"]:
        print(f"skipped: {message}", file=sys.stderr)
    print(f"pruned {summary['done']} example(s), {summary['resumed']} already done, "
          f"{len(summary['skipped'])} skipped -> {args.out}/examples.parquet, {args.out}/tokens.parquet")


def cmd_features(args) -> None:
    from .features import features_run
    from .models import load_model

    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    at_keep = [float(x) for x in args.at_keep.split(",")] if args.at_keep else []
    path = features_run(load_model(args.model, args.device), args.run, layers, at_keep)
    print(f"features -> {path}")


def cmd_annotate(args) -> None:
    from .categories import annotate_examples, annotate_run, export_demo, import_demo

    if args.import_demo:
        from .store import write_table

        out = args.out or args.run
        if not out:
            raise ValueError("--import-demo needs --out DIR")
        print(f"categories -> {write_table(import_demo(args.import_demo), Path(out) / 'categories.parquet')}")
        return
    if args.run:
        path = annotate_run(args.run)
        if args.export_demo:
            print(f"demo format -> {export_demo(args.run, args.export_demo)}")
    else:
        if not args.out:
            raise ValueError("give a RUN directory, or --data with --out DIR")
        model, examples = _load(args)
        path = annotate_examples(model, examples, args.out)
    print(f"categories -> {path}")


def cmd_merge(args) -> None:
    from .store import StageStore

    stages = {"prune": ("tokens", "examples"), "features": ("features",)}
    for stage, tables in stages.items():
        for table, path in StageStore(args.run, stage, tables).merge().items():
            print(f"{table}: {path}")


def build_parser() -> argparse.ArgumentParser:
    from .pruning import METHODS, OBJECTIVES

    parser = argparse.ArgumentParser(prog="prunelens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print a model's name, device, dtype, shape and cache path")
    _model_arg(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("prune", help="rank reasoning tokens by greedy deletion or a baseline")
    _model_arg(p)
    _data_args(p)
    p.add_argument("--objective", choices=OBJECTIVES, default="reason-answer",
                   help="reason-answer: mean log-prob of kept reasoning + answer; answer: answer only")
    p.add_argument("--method", choices=METHODS, default="greedy",
                   help="greedy (exact), greedy-fast (lazy re-scoring), or a baseline order")
    p.add_argument("--keep-ratio", type=float, default=0.0,
                   help="stop when this share of reasoning tokens is left (0: rank them all)")
    p.add_argument("--shard", default=None, help="i/n: process every n-th example starting at i")
    p.add_argument("--max-batch", type=int, default=None, help="most candidates per forward pass")
    p.add_argument("--out", required=True, help="run directory (re-running the command resumes it)")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("features", help="per-token attention, sparsity and surprisal features of a pruned run")
    p.add_argument("run", help="run directory made by `prunelens prune`")
    _model_arg(p)
    p.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    p.add_argument("--at-keep", default=None,
                   help="comma-separated keep ratios: also compute features on the pruned chain at each")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("annotate", help="label every reasoning token with one of six functional categories")
    p.add_argument("run", nargs="?", help="run directory made by `prunelens prune` (or use --data/--out)")
    _model_arg(p)
    _data_args(p)
    p.add_argument("--out", default=None, help="output directory for chains that are not pruned yet")
    p.add_argument("--export-demo", default=None, metavar="FILE.jsonl",
                   help="also write the published demo format (reason_tokens_json) of the run")
    p.add_argument("--import-demo", default=None, metavar="FILE.jsonl",
                   help="read categories made elsewhere in the demo format into --out/categories.parquet")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("merge", help="join the finished parts of shards into the run's tables")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=cmd_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable = args.func
    try:
        func(args)
    except EXPECTED_ERRORS as err:
        print(f"prunelens {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prunelens {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
