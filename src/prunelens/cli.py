"""Command line: each command parses its arguments, calls the library (``prunelens.Run``) and prints.

The pruning options are generated from ``PruneConfig`` and from the methods' own settings
(``pruning.registry``), so a new method's settings appear here without a line of this file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import USER_ERRORS, RunError, SettingsError

DEFAULT_MODEL = "smollm2-135m"  # the embedded model (models.DEFAULT_MODEL; not imported: --help stays light)


# -- argument helpers: parsing only ----------------------------------------------------------------

def _numbers(value: str | None, what: str, kind: type = int) -> list:
    """A comma-separated option's numbers (none for no value), or a one-line error naming the option."""
    if value is None:
        return []
    try:
        return [kind(x) for x in value.split(",")]
    except ValueError:
        said = "whole numbers" if kind is int else "numbers"
        raise SettingsError(f"{what} {value!r} is not comma-separated {said}") from None


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise SettingsError(f"{what} {value!r} is not NAME=VALUE")
        if name in out:
            raise SettingsError(f"{what} name {name!r} is given twice")
        out[name] = rest
    return out


def _ray(args):
    """RayOptions from ``--ray`` (checked, Ray not imported), or None."""
    if args.ray is None:
        if args.ray_workers is not None:
            raise SettingsError("--ray-workers needs --ray ADDRESS")
        return None
    from .cluster import RayOptions

    threads = getattr(args, "threads", None)
    return RayOptions(args.ray, args.ray_workers, 1 if threads is None else threads,
                      device=getattr(args, "device", None))


def _method_settings(args) -> dict:
    """The method settings given on the command line (recorded names), the others left out."""
    from .pruning.registry import all_settings

    given = {key: getattr(args, key) for key in all_settings() if getattr(args, key, None) is not None}
    return given


def _report_skipped(messages: Sequence[str]) -> None:
    for message in messages:
        print(f"skipped: {message}", file=sys.stderr)


# -- commands --------------------------------------------------------------------------------------

def cmd_info(args) -> None:
    from .models import describe

    info = describe(args.model, args.device, args.attention)
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")


def cmd_prune(args) -> None:
    from .run import Run

    core = {name: getattr(args, name) for name in ("objective", "keep_ratio", "max_batch", "memory_gib", "dtype",
                                                   "lockstep", "layout")}
    summary = Run(args.out).prune(args.model, args.data, args.method, limit=args.limit, min_tokens=args.min_tokens,
                                  max_tokens=args.max_tokens, seed=args.seed, skip_bad=args.skip_bad, shard=args.shard,
                                  ray=_ray(args), threads=args.threads, device=args.device,
                                  attention=args.attention, **core,
                                  **_method_settings(args))
    _report_skipped(summary["skipped"])
    table = "texts" if Run(args.out).is_text else "tokens"
    retried = f", {summary['retried']} handed out again after a worker died" if summary["retried"] else ""
    print(f"pruned {summary['done']} example(s), {summary['resumed']} already done, {len(summary['skipped'])} "
          f"skipped{retried} -> " + (f"{args.out}/examples.parquet, {args.out}/{table}.parquet" if summary["merged"] else
                                     f"{args.out}/parts (shard {args.shard}: run `prunelens merge {args.out}` once "
                                     "every shard is done)"))


def cmd_generate(args) -> None:
    from dataclasses import fields

    from .generation import GenerateConfig, generate_chains

    config = GenerateConfig(**{f.name: getattr(args, f.name) for f in fields(GenerateConfig)})
    summary = generate_chains(args.model, args.data, args.out, config, limit=args.limit, exclude=args.exclude,
                              data_seed=args.seed, ray=_ray(args), threads=args.threads, device=args.device,
                              attention=args.attention, skip_bad=args.skip_bad)
    _report_skipped(summary["skipped"])
    n, solved = summary["problems"], summary["solved"]
    print(f"generated {summary['done']} problem(s), {summary['resumed']} already done: {solved} of {n} solved within "
          f"{config.samples} samples (pass@{config.samples} {solved / n:.3f}), {n - solved} without a correct sample, "
          f"{summary['samples']} samples in all -> {args.out}/chains.jsonl, {args.out}/attempts.parquet, "
          f"{args.out}/problems.parquet")
    if not solved:
        print(f"no correct chain: {args.out}/chains.jsonl is empty (more --samples, a larger --max-new-tokens, "
              "or easier problems)", file=sys.stderr)


def cmd_fit_pruner(args) -> None:
    from .pruning.learned import fit_pruner

    pruner = fit_pruner(args.runs, limit=args.limit)
    pruner.save(args.out)
    info = pruner.info
    for name, cv in info["cv"].items():
        print(f"{name:<10} per-chain Spearman with exact greedy (grouped CV): {cv['chain_spearman']:.3f}")
    print(f"chose {info['chosen']}, fitted on {info['chains']} chains ({info['tokens']} tokens) of "
          f"{pruner.model} -> {args.out}")


def cmd_features(args) -> None:
    from .run import Run

    layers, at_keep = _numbers(args.layers, "--layers") or None, _numbers(args.at_keep, "--at-keep", float)
    summary = Run(args.run).features(args.model, layers=layers, at_keep=at_keep, ray=_ray(args), threads=args.threads,
                                     device=args.device, attention=args.attention, skip_bad=args.skip_bad)
    _report_skipped(summary["skipped"])
    print(f"features -> {summary['path']}")


def cmd_dynamic(args) -> None:
    from .run import Run

    print(f"dynamic -> {Run(args.run).dynamic(args.model, _numbers(args.keeps, '--keeps', float), args.device, args.attention)}")


def cmd_annotate(args) -> None:
    from .categories import DemoAnnotator
    from .run import Run

    annotator = DemoAnnotator(args.import_demo) if args.import_demo else None
    if args.run:
        run = Run(args.run)
        path = run.annotate(annotator)
        if args.export_demo:
            print(f"demo format -> {run.export_demo(args.export_demo)}")
    elif args.out:
        path = Run(args.out).annotate_chains(args.model, args.data, annotator, limit=args.limit,
                                             min_tokens=args.min_tokens, max_tokens=args.max_tokens, seed=args.seed,
                                             skip_bad=args.skip_bad)
    else:
        raise SettingsError("give a RUN directory, or --data with --out DIR")
    print(f"categories -> {path}")


def cmd_analyze(args) -> None:
    from .analysis import headline
    from .run import Run

    run = Run(args.run)
    tables = run.analyze(args.out, linear_only=args.linear_only)
    out = args.out or run.path / "analysis"
    print(f"analysis -> {out}: {', '.join(sorted(tables))}")
    _print_headline(run, out, headline(tables))


def _print_headline(run, out, numbers: dict[str, float]) -> None:
    """The headline numbers, what each is and where its table is; a warning for a small run."""
    from .analysis.study import HEADLINE_SOURCES, SMALL_RUN

    for key, value in numbers.items():
        print(f"  {key}: {value:.3f}")
    said = [f"  {prefix}...: {text}" for prefix, text in HEADLINE_SOURCES.items() if any(k.startswith(prefix) for k in numbers)]
    if said:
        print(f"what they are (tables in {out}; figures: `prunelens figures {run.path}`):")
        print("\n".join(said))
    chains = run.examples().example_id.nunique()
    if chains < SMALL_RUN:
        print(f"note: {chains} chains: correlations and intervals from so few chains are too noisy to read "
              "(the published analysis used 200)")


def cmd_agree(args) -> None:
    from .run import Run
    from .store import write_text

    table = Run(args.run).agree(args.other, args.random)
    if args.out:
        print(f"agreement -> {write_text(table.to_csv(index=False), Path(args.out))}")
    print(f"{len(table)} shared examples; means:")
    for column in [c for c in table.columns if c not in ("example_id", "n_reasoning")]:
        print(f"  {column}: {table[column].mean():.3f}")


def cmd_figures(args) -> None:
    from .run import Run

    paths = Run(args.run).figures(args.out, args.compare)
    print(f"{len(paths)} files -> {Path(paths[0]).parent if paths else args.out}")


def cmd_view(args) -> None:
    from .run import Run

    print(f"viewer -> {Run(args.run).view(args.out)}")


def cmd_demo(args) -> None:
    from .run import Run

    run = Run.demo(args.out, args.model, limit=args.limit, max_tokens=args.max_tokens, method=args.method,
                   seed=args.seed, device=args.device, attention=args.attention)
    print(f"\nrun:      {run.path}  (examples.parquet, tokens.parquet, features.parquet, categories.parquet)")
    print(f"analysis: {run.path / 'analysis'}")
    print(f"figures:  {run.path / 'figures'}  ({len(list((run.path / 'figures').glob('*.png')))} figures, PNG + PDF)")
    print(f"viewer:   {run.path / 'viewer.html'}")
    _print_headline(run, run.path / "analysis", run.headline())


def cmd_merge(args) -> None:
    from .run import Run

    for table, path in Run(args.run).merge().items():
        print(f"{table}: {path}")


def cmd_distill(args) -> None:
    from .distill import DistillConfig, EvalSet, distill, write_report

    if args.report:
        if args.run or args.eval:
            raise SettingsError("--report DIR recomputes the tables from DIR's files alone: give no --run or --eval")
        if not (Path(args.report) / "distill.json").is_file():
            raise RunError(f"{args.report} is not a distillation directory: it has no distill.json")
        tables = write_report(args.report)
        print(f"distill report -> {', '.join(f'{args.report}/{name}.csv' for name in tables)}")
        _print_results(tables)
        return
    if not args.run or not args.eval or not args.out:
        raise SettingsError("give --run NAME=RUN, --eval NAME=SOURCE and --out DIR (or --report DIR)")
    evals = []
    for name, spec in _pairs(args.eval, "--eval").items():
        source, _, style = spec.partition("@")
        evals.append(EvalSet(name, source, style or "chat", args.eval_limit, args.seed))
    config = DistillConfig(keep_ratios=tuple(_numbers(args.keep_ratio, "--keep-ratio", float)), student=args.student,
                           lora=args.lora, epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
                           seeds=tuple(_numbers(args.seeds, "--seeds")),
                           condition_seeds=tuple((name, tuple(_numbers(v, "--seeds-for")))
                                                 for name, v in _pairs(args.seeds_for or [], "--seeds-for").items()),
                           train_limit=args.train_limit, cpu_bf16=args.cpu_bf16,
                           max_new_tokens=args.max_new_tokens, eval_batch=args.eval_batch, eval_sets=tuple(evals))
    tables = distill(_pairs(args.run, "--run"), args.out, config, ray=_ray(args), threads=args.threads)
    print(f"distill -> {args.out}/results.csv, {args.out}/pairs.csv")
    _print_results(tables)


def _print_results(tables: dict) -> None:
    """One line per student and evaluation set; then the plan's comparisons, where the directory has a plan."""
    import pandas as pd

    from .distill.config import label

    for row in tables["results"].itertuples():
        name = row.method if row.method == "base" else label(row.method, row.keep_ratio)
        seed = "" if pd.isna(row.seed) else f"seed {int(row.seed)}"
        print(f"  {name:<20} {seed:<7} {row.eval_set:<8} accuracy {row.accuracy:.3f} "
              f"[{row.ci_low:.3f}, {row.ci_high:.3f}]  train tokens {row.mean_train_reasoning_tokens:.1f}")
    if "comparisons" not in tables:
        return
    comparisons = tables["comparisons"]
    done = comparisons[comparisons.status == "done"]
    print(f"planned comparisons ({len(done)} of {len(comparisons)} have both sides; p Holm-adjusted in the family)")
    for row in done.itertuples():
        p = row.p_holm if row.family == "family" else row.p_value
        said = "0 (no resample crossed zero)" if p == 0 else f"{p:.4f}"
        print(f"  {row.a} - {row.b}: {row.difference:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]  "
              f"seeds {row.seeds_a} / {row.seeds_b}  {'p_holm' if row.family == 'family' else 'p'} {said}  "
              f"{row.verdict}")


# -- the parser ------------------------------------------------------------------------------------

def _model_args(parser: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
    said = f"default: {default}, the embedded model" if default else "default: the model the run was pruned with"
    parser.add_argument("--model", default=default, help=f"embedded name, Hugging Face id or local directory ({said})")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--attention", default=None, choices=("sdpa", "eager"),
                        help="the model's attention (default: sdpa where its family has it, else eager)")


def _data_args(parser) -> None:
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


def _threads_arg(parser: argparse.ArgumentParser, shards: bool = False) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own" + ("; with --shard i/n, the cores divided by n"
                                                                          if shards else "") +
                             "; with --ray: per worker, default 1)")


def _ray_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run the examples on a Ray cluster: local (start one here), auto or HOST:PORT "
                             "(join a running one); the run directory must be on storage every node sees")
    parser.add_argument("--ray-workers", type=int, default=None, metavar="N",
                        help="with --ray: at most N workers (default: one per GPU, else one per --threads CPUs)")


def _prune_options(parser: argparse.ArgumentParser) -> None:
    """``PruneConfig``'s options and every method's settings, from their own declarations."""
    from dataclasses import MISSING, fields

    from .pruning import METHODS, PruneConfig
    from .pruning.registry import settings_of

    parser.add_argument("--method", choices=list(METHODS), default="greedy",
                        help="; ".join(f"{name}: {cls.help}" for name, cls in METHODS.items()))
    for f in fields(PruneConfig):
        if f.name in ("method", "seed"):  # --method above; --seed is the data's too
            continue
        kind = type(f.default) if f.default not in (None, MISSING) else (float if "float" in str(f.type) else int)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default,
                            choices=f.metadata.get("choices"), help=f.metadata["help"])
    seen = set()
    for cls in METHODS.values():
        for key, f in settings_of(cls).items():
            if key in seen:
                continue
            seen.add(key)
            if f.metadata["flag"]:
                flag, value = f.metadata["flag"]
                parser.add_argument(flag, dest=key, action="store_const", const=value, default=None,
                                    help=f.metadata["help"])
            else:
                kind = str if f.default is None else type(f.default)
                parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=None,
                                    help=f"{f.metadata['help']} (default {f.default})")


def _generate_options(parser: argparse.ArgumentParser) -> None:
    """The problems, and ``GenerateConfig``'s options from its own declaration."""
    from dataclasses import fields

    from .generation import GenerateConfig

    parser.add_argument("--data", default="gsm-symbolic",
                        help="gsm-symbolic[:templates=IDS|:other-templates=IDS], gsm8k:PATH or jsonl:PATH "
                             "(id, question, answer: the gold answer each sample is checked against)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many problems")
    parser.add_argument("--exclude", action="append", default=[], metavar="RUN",
                        help="leave out the problems this run directory or chains .jsonl holds (repeatable)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip bad input lines (reporting how many) instead of stopping")
    parser.add_argument("--seed", type=int, default=0, help="seed of generated data and of the samples")
    for f in fields(GenerateConfig):
        if f.name != "seed":
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                                choices=f.metadata.get("choices"), help=f.metadata["help"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunelens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print a model's name, shape, device, dtype and cache path (no weights loaded)")
    _model_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("generate", help="the teacher writes its own chains: rejection-sampled, the first correct kept")
    _model_args(p)
    _generate_options(p)
    _threads_arg(p)
    _ray_args(p)
    p.add_argument("--out", required=True, help="directory for chains.jsonl, attempts.parquet, problems.parquet "
                                                "(re-running the command resumes it)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("prune", help="rank reasoning tokens by greedy deletion or a baseline")
    _model_args(p)
    _data_args(p)
    _prune_options(p)
    p.add_argument("--shard", default=None, help="i/n: process every n-th example starting at i")
    _threads_arg(p, shards=True)
    _ray_args(p)
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
    _model_args(p, default=None)
    p.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    p.add_argument("--at-keep", default=None,
                   help="comma-separated keep ratios: also compute features on the pruned chain at each")
    _threads_arg(p)
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out examples that cannot be done (reporting them) instead of stopping")
    _ray_args(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("dynamic", help="score every remaining token of an exact greedy run at several keep ratios")
    p.add_argument("run", help="run directory made by `prunelens prune --method greedy`")
    _model_args(p, default=None)
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
    p.add_argument("--cpu-bf16", action="store_true",
                   help="train on CPU in bf16 autocast over float32 weights, as on CUDA (faster where the CPU has "
                        "bf16 units; not bit-equal to float32)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds: one student per condition and seed")
    p.add_argument("--seeds-for", action="append", metavar="KEY=SEEDS",
                   help="other seeds for a condition (greedy@0.8=0,1,2), a method (greedy=...) or a keep ratio "
                        "(@0.8=...); the most specific wins (repeat; a resumed run may add seeds)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated eval sets")
    p.add_argument("--train-limit", type=int, default=None, help="at most this many shared problems per training set")
    p.add_argument("--eval-limit", type=int, default=500, help="problems per eval set")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--eval-batch", type=int, default=16, help="problems generated side by side (more on a GPU)")
    _threads_arg(p)
    _ray_args(p)
    p.add_argument("--out", default=None, help="output directory (re-running the command resumes it)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="recompute DIR's results.csv, pairs.csv, comparisons.csv (with DIR/plan.json) and "
                        "summary.md (the same tables in Markdown) from its files alone, nothing trained")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("annotate", help="label every reasoning token with one of six functional categories")
    p.add_argument("run", nargs="?", help="run directory made by `prunelens prune` (or use --data/--out)")
    p.add_argument("--export-demo", default=None, metavar="FILE.jsonl",
                   help="also write the published demo format (reason_tokens_json) of the run")
    p.add_argument("--import-demo", default=None, metavar="FILE.jsonl",
                   help="take the labels from a demo-format file made elsewhere instead of the rules "
                        "(chains matched by question; tokens must match the run's)")
    chains = p.add_argument_group("chains not pruned yet (instead of RUN): tokenised as prune would")
    chains.add_argument("--model", default=DEFAULT_MODEL, help="the tokenizer's model (its weights are not loaded)")
    _data_args(chains)
    chains.add_argument("--out", default=None, help="output directory for chains that are not pruned yet")
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
    p.add_argument("--out", default=None, help="output directory (default: RUN/figures)")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("view", help="write one self-contained HTML page to step through a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", default=None, help="FILE.html (default: RUN/viewer.html)")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("demo", help="the whole pipeline on GSM-Symbolic chains with the embedded model")
    _model_args(p)
    p.add_argument("--limit", type=int, default=12, help="how many chains")
    p.add_argument("--max-tokens", type=int, default=50, help="only chains with at most this many reasoning tokens")
    p.add_argument("--method", default="greedy", help="pruning method (default: exact greedy)")
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
