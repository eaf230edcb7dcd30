"""Command line: a thin shell over the Python API (``prunelens --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import USER_ERRORS, DataError, RunError


DEFAULT_MODEL = "smollm2-135m"  # the embedded model (models.DEFAULT_MODEL; not imported: it needs no torch here)


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"embedded name ({DEFAULT_MODEL}), Hugging Face id or local directory")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="gsm-symbolic",
                        help="gsm-symbolic[:templates=IDS|:other-templates=IDS], gsm8k:PATH or jsonl:PATH "
                             "(id, question, reasoning, answer)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many examples")
    parser.add_argument("--seed", type=int, default=0, help="seed for generated data and random orders")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad input lines and examples (reporting how many) instead of stopping")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="use only chains whose reasoning has at most this many tokens (then --limit)")
    parser.add_argument("--min-tokens", type=int, default=0,
                        help="use only chains whose reasoning has at least this many tokens (then --limit)")


def _examples(args) -> list:
    """The examples of ``--data`` (before any model loads: bad input fails fast)."""
    from .data import is_generated, load_examples

    skipped: list[str] = []
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError(f"--max-tokens {args.max_tokens}: give a positive number of tokens")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: give a positive number of examples")
    # generated data: make enough candidates to filter; files: read them all, then filter
    pool = (10 * (args.limit or 100) if is_generated(args.data) else None) if _filtered(args) else args.limit
    examples = load_examples(args.data, pool, args.seed, args.skip_bad, skipped)
    for message in skipped:
        print(f"skipped: {message}", file=sys.stderr)
    args.bad_lines = len(skipped)
    return examples


def _filtered(args) -> bool:
    return args.max_tokens is not None or bool(args.min_tokens)


def _load(args, dtype=None, weights: bool = True, examples: list | None = None) -> tuple:
    """The model of ``--model`` and the examples of ``--data`` (read first), filtered by length."""
    from .layout import select_short
    from .models import load_model

    examples = _examples(args) if examples is None else examples
    model = load_model(args.model, args.device, dtype, weights=weights)
    if _filtered(args):
        examples = select_short(examples, model.tokenizer, args.max_tokens, args.limit, args.min_tokens)
        if not examples:
            raise DataError(f"no example of {args.data} has {args.min_tokens}..{args.max_tokens or 'any'} "
                            "reasoning tokens: nothing to do, nothing written")
    return model, examples


def _source(data: str) -> str:
    """The data source as recorded in a run: a file's path made absolute."""
    from .data import is_generated

    kind, _, rest = data.partition(":")
    return f"{kind}:{Path(rest).expanduser().resolve()}" if rest and not is_generated(data) else data


def _absolute(path: str | None) -> str | None:
    """A file or directory setting as recorded and sent to workers (any working directory): absolute.
    A name that is no local path (a Hugging Face id) stays as it is."""
    if path is None or not Path(path).expanduser().exists():
        return path
    return str(Path(path).expanduser().resolve())


def _out_dir(path: str) -> None:
    if Path(path).exists() and not Path(path).is_dir():
        raise ValueError(f"--out {path} is a file, not a directory")


def _out_file(path: str) -> None:
    if Path(path).is_dir():
        raise ValueError(f"--out {path} is a directory, not a file")


def _set_threads(args) -> None:
    """Torch threads: ``--threads``, else each of n shards takes 1/n of the cores (shards slow each
    other down many times over when each takes them all)."""
    import os

    import torch

    threads, shard = args.threads, getattr(args, "shard", None)
    if threads is None and shard:
        threads = max(1, (os.cpu_count() or 1) // int(shard.split("/")[1]))
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads {threads} is not a positive number")
        torch.set_num_threads(threads)


def _ray_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run the examples on a Ray cluster: local (start one here), auto or HOST:PORT "
                             "(join a running one); the run directory must be on storage every node sees")
    parser.add_argument("--ray-workers", type=int, default=None, metavar="N",
                        help="with --ray: at most N workers (default: one per GPU, else one per --threads CPUs)")


def _ray(args):
    """RayOptions from ``--ray`` (checked, Ray not imported), or None: workers get ``--threads`` CPUs each."""
    if args.ray is None:
        if args.ray_workers is not None:
            raise ValueError("--ray-workers needs --ray ADDRESS")
        return None
    from .cluster import RayOptions

    if getattr(args, "shard", None):
        raise ValueError("--shard and --ray do not mix: the cluster hands out every example")
    threads = getattr(args, "threads", None)
    return RayOptions(args.ray, args.ray_workers, 1 if threads is None else threads,
                      device=getattr(args, "device", None))


def _cluster_device(args, ray) -> str:
    """Join or start the cluster once ``--model`` is known to exist; the device its workers use."""
    from .cluster import connect
    from .models import resolve_model_path

    resolve_model_path(args.model)  # a bad --model fails before the cluster starts
    return connect(ray)


def cmd_info(args) -> None:
    from .models import load_model

    info = load_model(args.model, args.device).info()
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")


def cmd_prune(args) -> None:
    from .models import default_device
    from .pruning import METHODS, PruneConfig, prune_examples, writes_text
    from .pruning.stage import check_ray
    from .schema import prune_tables
    from .store import shard_of

    config = PruneConfig(method=args.method, objective=args.objective, keep_ratio=args.keep_ratio, seed=args.seed,
                         fast_share=args.fast_share, fast_refresh=args.fast_refresh,
                         fast_neighbours=args.fast_neighbours, batch_share=args.batch_share, max_batch=args.max_batch,
                         memory_gib=args.memory_gib, dtype=args.dtype,
                         trajectory="full" if args.full_trajectory else "grid", pruner=_absolute(args.pruner),
                         passes=args.passes, lockstep=args.lockstep, segment_tokens=args.segment_tokens,
                         compressed=_absolute(args.compressed), rewriter=_absolute(args.rewriter))
    shard_of([], args.shard)  # checked before the model loads
    ray = _ray(args)
    check_ray(config, ray)
    if config.method == "learned":  # the pruner file too
        from .pruning.learned import load_pruner, shipped_pruner

        load_pruner(config.pruner or shipped_pruner(args.model))
    if config.method == "import":  # and the compressed chains' file, line by line
        from .pruning.texts import read_compressed

        read_compressed(config.compressed)
    _out_dir(args.out)
    examples = _examples(args)
    if ray is None:
        _set_threads(args)
        device = args.device or default_device()
    else:  # the driver lays out and records; the workers load the weights
        device = _cluster_device(args, ray)
    model, examples = _load(args, config.torch_dtype(device), weights=ray is None, examples=examples)
    summary = prune_examples(model, examples, args.out, config, shard=args.shard, skip_bad=args.skip_bad,
                             data=_source(args.data), ray=ray)
    for message in summary["skipped"]:
        print(f"skipped: {message}", file=sys.stderr)
    skipped = args.bad_lines + len(summary["skipped"])  # bad data lines and examples that cannot be laid out
    table = prune_tables(writes_text(METHODS[config.method]))[0]
    retried = f", {summary['retried']} handed out again after a worker died" if summary["retried"] else ""
    print(f"pruned {summary['done']} example(s), {summary['resumed']} already done, {skipped} skipped{retried} -> "
          + (f"{args.out}/examples.parquet, {args.out}/{table}.parquet" if summary["merged"] else
             f"{args.out}/parts (shard {args.shard}: run `prunelens merge {args.out}` once every shard is done)"))


def cmd_fit_pruner(args) -> None:
    from .pruning.learned import fit_pruner

    _out_dir(args.out)
    pruner = fit_pruner(args.runs, limit=args.limit)
    pruner.save(args.out)
    info = pruner.info
    for name, cv in info["cv"].items():
        print(f"{name:<10} per-chain Spearman with exact greedy (grouped CV): {cv['chain_spearman']:.3f}")
    print(f"chose {info['chosen']}, fitted on {info['chains']} chains ({info['tokens']} tokens) of "
          f"{pruner.model} -> {args.out}")


def _numbers(value: str, what: str, kind: type = int) -> list:
    """A comma-separated option's numbers, or a one-line error naming the option."""
    try:
        return [kind(x) for x in value.split(",")]
    except ValueError:
        said = "whole numbers" if kind is int else "numbers"
        raise ValueError(f"{what} {value!r} is not comma-separated {said}") from None


def cmd_dynamic(args) -> None:
    from .dynamic import dynamic_run
    from .models import load_model
    from .schema import EXAMPLES, read_table

    keeps = _numbers(args.keeps, "--keeps", float)
    if not all(0 < k <= 1 for k in keeps):
        raise ValueError(f"--keeps {args.keeps}: keep ratios must be in (0, 1]")
    methods = set(read_table(args.run, EXAMPLES).method)  # before the model loads
    if methods != {"greedy"}:
        raise RunError(f"{args.run} was made with {sorted(methods)}: dynamic importance follows exact greedy's states")
    print(f"dynamic -> {dynamic_run(load_model(args.model, args.device), args.run, keeps)}")


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{what} {value!r} is not NAME=VALUE")
        if name in out:
            raise ValueError(f"{what} name {name!r} is given twice")
        out[name] = rest
    return out


def cmd_distill(args) -> None:
    from .distill import DistillConfig, EvalSet, distill, write_report

    if args.report:
        if args.run or args.eval:
            raise ValueError("--report DIR recomputes the tables from DIR's files alone: give no --run or --eval")
        if not (Path(args.report) / "distill.json").is_file():
            raise RunError(f"{args.report} is not a distillation directory: it has no distill.json")
        tables = write_report(args.report)
        print(f"distill report -> {', '.join(f'{args.report}/{name}.csv' for name in tables)}")
        _print_results(tables["results"])
        return
    if not args.run or not args.eval or not args.out:
        raise ValueError("give --run NAME=RUN, --eval NAME=SOURCE and --out DIR (or --report DIR)")
    evals = []
    for name, spec in _pairs(args.eval, "--eval").items():
        source, _, style = spec.partition("@")
        evals.append(EvalSet(name, source, style or "chat", args.eval_limit, args.seed))
    config = DistillConfig(keep_ratios=tuple(_numbers(args.keep_ratio, "--keep-ratio", float)), student=args.student,
                           lora=args.lora, epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
                           seeds=tuple(_numbers(args.seeds, "--seeds")),
                           condition_seeds=tuple((name, tuple(_numbers(v, "--seeds-for")))
                                                 for name, v in _pairs(args.seeds_for or [], "--seeds-for").items()),
                           train_limit=args.train_limit,
                           max_new_tokens=args.max_new_tokens, eval_batch=args.eval_batch, eval_sets=tuple(evals))
    _out_dir(args.out)
    ray = _ray(args)
    if ray is None:
        _set_threads(args)
    tables = distill(_pairs(args.run, "--run"), args.out, config, ray=ray)
    print(f"distill -> {args.out}/results.csv, {args.out}/pairs.csv")
    _print_results(tables["results"])


def _print_results(results) -> None:
    for row in results.itertuples():
        ratio = "" if row.method == "base" else f"@{row.keep_ratio:g}"
        print(f"  {row.method + ratio:<20} seed {row.seed!s:<4} {row.eval_set:<8} accuracy {row.accuracy:.3f} "
              f"[{row.ci_low:.3f}, {row.ci_high:.3f}]  train tokens {row.mean_train_reasoning_tokens:.1f}")


def cmd_features(args) -> None:
    from .features import features_run
    from .models import load_model

    layers = _numbers(args.layers, "--layers") if args.layers else None
    at_keep = _numbers(args.at_keep, "--at-keep", float) if args.at_keep else []
    ray = _ray(args)
    if ray is None:
        _set_threads(args)
        model = load_model(args.model, args.device)
    else:
        from .schema import EXAMPLES, read_table

        read_table(args.run, EXAMPLES)  # a bad run fails before the cluster starts
        model = load_model(args.model, _cluster_device(args, ray), weights=False)
    path = features_run(model, args.run, layers, at_keep, ray=ray, skip_bad=args.skip_bad)
    print(f"features -> {path}")


def cmd_annotate(args) -> None:
    from .categories import DemoAnnotator, RuleAnnotator, annotate_examples, annotate_run, export_demo

    annotator = DemoAnnotator(args.import_demo) if args.import_demo else RuleAnnotator()
    if args.run:
        path = annotate_run(args.run, annotator)
        if args.export_demo:
            print(f"demo format -> {export_demo(args.run, args.export_demo)}")
    else:
        if not args.out:
            raise ValueError("give a RUN directory, or --data with --out DIR")
        model, examples = _load(args)
        path = annotate_examples(model, examples, args.out, annotator)
    print(f"categories -> {path}")


def cmd_analyze(args) -> None:
    from .analysis import analyze, headline

    tables = analyze(args.run, args.out, linear_only=args.linear_only)
    print(f"analysis -> {args.out or Path(args.run) / 'analysis'}: {', '.join(sorted(tables))}")
    for key, value in headline(tables).items():
        print(f"  {key}: {value:.3f}")


def cmd_agree(args) -> None:
    from .analysis import normalised_objective, order_agreement
    from .schema import EXAMPLES, TOKENS, is_text_run, read_table
    from .store import write_text

    if is_text_run(args.other) and not args.random:
        raise ValueError(f"{args.other} holds compressed texts, no order to agree on: give --random RUN "
                         "for the normalised objective")
    normalised = normalised_objective(read_table(args.other, EXAMPLES), read_table(args.run, EXAMPLES),
                                      read_table(args.random, EXAMPLES)) if args.random else None
    if is_text_run(args.other):
        table = normalised
    else:
        table = order_agreement(read_table(args.run, TOKENS), read_table(args.other, TOKENS))
        if normalised is not None:
            table = table.merge(normalised, on="example_id", how="left")
    if args.out:
        print(f"agreement -> {write_text(table.to_csv(index=False), Path(args.out))}")
    print(f"{len(table)} shared examples; means:")
    for column in [c for c in table.columns if c not in ("example_id", "n_reasoning")]:
        print(f"  {column}: {table[column].mean():.3f}")


def cmd_figures(args) -> None:
    from .figures import make_figures

    _out_dir(args.out)
    paths = make_figures(args.run, args.out, args.compare)
    print(f"{len(paths)} files -> {args.out}")


def cmd_view(args) -> None:
    from .viewer import write_viewer

    _out_file(args.out)
    print(f"viewer -> {write_viewer(args.run, args.out)}")


def cmd_demo(args) -> None:
    from .layout import select_short
    from .data import load_examples
    from .models import load_model
    from .pipeline import run_pipeline

    model = load_model(args.model, args.device)
    examples = select_short(load_examples("gsm-symbolic", 10 * args.limit, args.seed), model.tokenizer,
                            args.max_tokens, args.limit)
    result = run_pipeline(model, examples, args.out, args.method, seed=args.seed)
    print(f"\nrun:      {result['run']}  (examples.parquet, tokens.parquet, features.parquet, categories.parquet)")
    print(f"analysis: {result['analysis']}")
    print(f"figures:  {result['figures']}  ({result['n_figures']} files)")
    print(f"viewer:   {result['viewer']}")
    for key, value in result["headline"].items():
        print(f"  {key}: {value:.3f}")


def cmd_merge(args) -> None:
    from .schema import stage_tables
    from .store import StageStore

    stages = stage_tables()
    if not any(StageStore(args.run, stage, tables).parts.is_dir() for stage, tables in stages.items()):
        raise RunError(f"{args.run} is not a run directory: it has no parts/ of prune or features to merge")
    for stage, tables in stages.items():
        for table, path in StageStore(args.run, stage, tables).merge().items():
            print(f"{table}: {path}")


def build_parser() -> argparse.ArgumentParser:
    from .pruning import METHODS, OBJECTIVES, PruneConfig
    from .pruning.config import DTYPES

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
    p.add_argument("--method", choices=list(METHODS), default="greedy",
                   help="; ".join(f"{name}: {method.help}" for name, method in METHODS.items()))
    p.add_argument("--keep-ratio", type=float, default=0.0,
                   help="stop when this share of reasoning tokens is left (0: rank them all)")
    p.add_argument("--shard", default=None, help="i/n: process every n-th example starting at i")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's own; with --shard i/n, the cores divided by n; "
                        "with --ray: per worker, default 1)")
    _ray_arg(p)
    defaults = PruneConfig()
    p.add_argument("--fast-share", type=float, default=defaults.fast_share,
                   help="greedy-fast: share of candidates re-scored per batch (at least 8)")
    p.add_argument("--fast-refresh", type=int, default=defaults.fast_refresh,
                   help="greedy-fast: re-score every candidate every this many steps")
    p.add_argument("--fast-neighbours", type=int, default=defaults.fast_neighbours,
                   help="greedy-fast: also re-score tokens this close to a deletion")
    p.add_argument("--batch-share", type=float, default=defaults.batch_share,
                   help="greedy-batch: delete up to this share of the remaining tokens per step")
    p.add_argument("--max-batch", type=int, default=None, help="most packed rows per forward pass")
    p.add_argument("--lockstep", type=int, default=defaults.lockstep,
                   help="greedy, greedy-words, greedy-fast, greedy-batch: search this many examples side by side, "
                        "scored in shared passes")
    p.add_argument("--memory-gib", type=float, default=None,
                   help="memory budget of the scoring engine (default: 2 on CPU, 60%% of free GPU memory)")
    p.add_argument("--full-trajectory", action="store_true",
                   help="baselines: score the state after every deletion (default: every 0.05 of keep ratio)")
    p.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="weights' dtype (auto: float32 on CPU, bfloat16 on CUDA); log-softmax is float32")
    p.add_argument("--segment-tokens", type=int, default=defaults.segment_tokens,
                   help="llmlingua: tokens per window; llmlingua-segments: tokens per segment")
    p.add_argument("--compressed", default=None,
                   help="import: JSONL of compressed chains (id, keep_ratio, reasoning) made elsewhere")
    p.add_argument("--rewriter", default=None,
                   help="rewrite: the instruction model that rewrites (default: the pruner model)")
    p.add_argument("--pruner", default=None,
                   help="learned: a pruner directory made by fit-pruner (default: the one shipped for the model)")
    p.add_argument("--passes", type=int, default=defaults.passes,
                   help="learned: rank in this many hooked passes, each on the chain the earlier ones left")
    p.add_argument("--out", required=True, help="run directory (re-running the command resumes it)")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("fit-pruner", help="fit a one-pass pruner on exact greedy runs that have features")
    p.add_argument("runs", nargs="+", help="run directories made by `prunelens prune --method greedy` + `features`")
    p.add_argument("--limit", type=int, default=None,
                   help="fit on the first N chains (by id) only; the rest stay held out for benchmarks")
    p.add_argument("--out", required=True, help="pruner directory to write (estimator.skops, pruner.json)")
    p.set_defaults(func=cmd_fit_pruner)

    p = sub.add_parser("features", help="per-token attention, sparsity and surprisal features of a pruned run")
    p.add_argument("run", help="run directory made by `prunelens prune`")
    _model_arg(p)
    p.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    p.add_argument("--at-keep", default=None,
                   help="comma-separated keep ratios: also compute features on the pruned chain at each")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (with --ray: per worker, default 1)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out examples that cannot be done (reporting them) instead of stopping")
    _ray_arg(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("dynamic", help="score every remaining token of an exact greedy run at several keep ratios")
    p.add_argument("run", help="run directory made by `prunelens prune --method greedy`")
    _model_arg(p)
    p.add_argument("--keeps", default="1,0.75,0.5,0.25", help="comma-separated keep ratios (default: 1,0.75,0.5,0.25)")
    p.set_defaults(func=cmd_dynamic)

    p = sub.add_parser("distill", help="train students on each run's chains at keep ratios and evaluate them")
    p.add_argument("--run", action="append", metavar="NAME=RUN",
                   help="a method's run, read at every --keep-ratio (NAME@RATIO=RUN: at that ratio only, e.g. a text "
                        "run compressed to one ratio); repeat; the controls full and answer-only are added")
    p.add_argument("--eval", action="append", metavar="NAME=SOURCE[@STYLE]",
                   help="an eval set: gsm-symbolic[:templates=IDS], gsm8k:PATH or jsonl:PATH; style chat (default), "
                        "instruct or plain; twins of training problems and repeats are left out")
    p.add_argument("--keep-ratio", default="0.5",
                   help="comma-separated keep ratios each run is read at (default 0.5): a condition METHOD@RATIO each")
    p.add_argument("--student", default=DEFAULT_MODEL, help="embedded name, Hugging Face id or local directory")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters instead of every weight")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--lr", type=float, default=5e-5, help="learning rate")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seeds", default="0", help="comma-separated seeds: one student per condition and seed")
    p.add_argument("--seeds-for", action="append", metavar="KEY=SEEDS",
                   help="other seeds for a condition (greedy@0.8=0,1,2), a method (greedy=...) or a keep ratio "
                        "(@0.8=...); the most specific wins (repeat; a resumed run may add seeds)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated eval sets")
    p.add_argument("--train-limit", type=int, default=None, help="at most this many shared problems per training set")
    p.add_argument("--eval-limit", type=int, default=500, help="problems per eval set")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--eval-batch", type=int, default=16, help="problems generated side by side (more on a GPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (with --ray: per worker, default 1)")
    _ray_arg(p)
    p.add_argument("--out", default=None, help="output directory (re-running the command resumes it)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="recompute DIR's results.csv, pairs.csv and comparisons.csv (with DIR/plan.json) from its "
                        "files alone, nothing trained")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("annotate", help="label every reasoning token with one of six functional categories")
    p.add_argument("run", nargs="?", help="run directory made by `prunelens prune` (or use --data/--out)")
    _model_arg(p)
    _data_args(p)
    p.add_argument("--out", default=None, help="output directory for chains that are not pruned yet")
    p.add_argument("--export-demo", default=None, metavar="FILE.jsonl",
                   help="also write the published demo format (reason_tokens_json) of the run")
    p.add_argument("--import-demo", default=None, metavar="FILE.jsonl",
                   help="take the labels from a demo-format file made elsewhere instead of the rules "
                        "(chains matched by question; tokens must match the run's)")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("analyze", help="regressions, classifiers and category survival tables of a run")
    p.add_argument("run", help="run directory with tokens (and features, categories)")
    p.add_argument("--out", default=None, help="output directory (default: RUN/analysis)")
    p.add_argument("--linear-only", action="store_true", help="ridge and logistic models only (skip boosting): quicker")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("agree", help="how alike two runs' deletion orders are (say greedy-fast against greedy)")
    p.add_argument("run", help="run directory")
    p.add_argument("other", help="run directory of the same model and data")
    p.add_argument("--random", default=None, metavar="RUN",
                   help="a random-deletion run of the same chains: adds OTHER's normalised objective at keep "
                        "0.75/0.5/0.25, (other - random) / (run - random), with RUN the exact greedy run")
    p.add_argument("--out", default=None, metavar="FILE.csv", help="write the per-example table")
    p.set_defaults(func=cmd_agree)

    p = sub.add_parser("figures", help="paper figures (PNG and PDF) of a run")
    p.add_argument("run", help="analysed run directory")
    p.add_argument("--compare", nargs="*", default=[],
                   help="other runs whose trajectories (and category survival, where analysed) to draw beside")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("view", help="write one self-contained HTML page to step through a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", required=True, help="FILE.html")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("demo", help="the whole pipeline on GSM-Symbolic chains with the embedded model")
    _model_arg(p)
    p.add_argument("--limit", type=int, default=12, help="how many chains")
    p.add_argument("--max-tokens", type=int, default=50, help="only chains with at most this many reasoning tokens")
    p.add_argument("--method", choices=list(METHODS), default="greedy", help="pruning method (default: exact greedy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo", help="output directory")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("merge", help="join the finished parts of shards into the run's tables (once all are done)")
    p.add_argument("run", help="run directory")
    p.set_defaults(func=cmd_merge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable = args.func
    try:
        func(args)
    except USER_ERRORS as err:
        print(f"prunelens {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prunelens {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
