"""Fidelity and cost of every pruning method on held-out chains of an exact greedy run, at keep 0.5.

    python benchmarks/bench_pruners.py --exact runs/gsm8k-200-greedy [--pruner DIR] [--limit 20]
        [--passes 2,4] [--time-exact 3] [--work runs/bench-pruners] [--out benchmarks/results/pruners.json]

Held-out chains: the exact run's chains that the learned pruner was not fitted on (its
``pruner.json`` lists them). Every method prunes them into ``WORK/METHOD`` (resumable; whole
orders, ``rewrite`` at keep 0.5). Per method: the normalised objective at keep 0.5 ((method -
random) / (exact - random), 1 = as good as exact greedy), the Spearman correlation of its deletion
steps with exact greedy's, each category's survival ratio at 0.5 (beside greedy's), and seconds per
chain: ranking alone and with the exact trajectory every run records. Exact greedy is timed again
here on ``--time-exact`` chains, so every time comes from this process on this machine; the
speed-up column is exact greedy's seconds over the method's ranking seconds. ``--passes`` adds the
learned pruner ranking in that many passes (``learned x P``), each on the chain the last one left.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from prunelens.analysis import category_survival, normalised_objective, order_agreement
from prunelens.categories import annotate_run
from prunelens.schema import DISPLAY
from prunelens.data import Example
from prunelens.models import load_model
from prunelens.pruning import METHODS, prune_examples, writes_text
from prunelens.pruning.learned import load_pruner, shipped_pruner
from prunelens.schema import EXAMPLES, TOKENS, load_tokens, read_table
from prunelens.store import natural_key, write_text

ROOT = Path(__file__).resolve().parents[1]
KEEP = 0.5
SKIP = ("greedy", "import")  # greedy is the reference; import needs chains made elsewhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exact", required=True, help="an exact greedy run (with the held-out chains)")
    parser.add_argument("--pruner", default=None, help="the learned pruner (default: the shipped one)")
    parser.add_argument("--limit", type=int, default=20, help="at most this many held-out chains")
    parser.add_argument("--passes", default="", help="comma-separated pass counts of extra learned rows")
    parser.add_argument("--time-exact", type=int, default=3, help="chains exact greedy is timed on again here")
    parser.add_argument("--work", default=str(ROOT / "runs/bench-pruners"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/pruners.json"))
    args = parser.parse_args()

    exact = read_table(args.exact, EXAMPLES)
    model = load_model(exact.model.iloc[0], "cpu")
    pruner = args.pruner or str(shipped_pruner(model.name))
    fitted = set(load_pruner(pruner).info.get("example_ids", []))
    held = sorted(set(exact.example_id) - fitted, key=natural_key)[: args.limit]
    if not held:
        raise SystemExit(f"{args.exact} has no chain the pruner was not fitted on")
    rows = exact.set_index("example_id").loc[held]
    examples = [Example(i, r.question, r.reasoning, r.answer) for i, r in rows.iterrows()]
    work = Path(args.work)
    runs = {}
    for method in [m for m in METHODS if m not in SKIP]:
        runs[method] = work / method
        settings = {"pruner": pruner} if method == "learned" else {"keep_ratio": KEEP} if method == "rewrite" else {}
        prune_examples(model, examples, runs[method], method=method, **settings)
    for passes in [int(p) for p in args.passes.split(",") if p]:
        runs[f"learned x{passes}"] = work / f"learned-passes-{passes}"
        prune_examples(model, examples, runs[f"learned x{passes}"], method="learned", pruner=pruner, passes=passes)
    timed = work / "greedy-timed"
    prune_examples(model, examples[: args.time_exact], timed, method="greedy")
    exact_seconds = float(read_table(timed, EXAMPLES).seconds.mean())

    exact_rows = exact[exact.example_id.isin(held)]
    exact_tokens = read_table(args.exact, TOKENS)
    exact_tokens = exact_tokens[exact_tokens.example_id.isin(held)]
    greedy_cats = _survival(args.exact, held)
    results = {"greedy": {"normalised@0.5": 1.0, "spearman": 1.0, "rank_seconds": exact_seconds,
                          "seconds": exact_seconds, "speedup": 1.0, **greedy_cats}}
    random_rows = read_table(runs["random"], EXAMPLES)
    for method, run in runs.items():
        ex = read_table(run, EXAMPLES)
        norm = normalised_objective(ex, exact_rows, random_rows, ratios=(KEEP,))[f"normalised@{KEEP:g}"]
        text = writes_text(METHODS[ex.method.iloc[0]])
        spearman = np.nan if text else float(order_agreement(exact_tokens, read_table(run, TOKENS)).spearman.mean())
        results[method] = {"normalised@0.5": float(norm.mean()), "spearman": spearman,
                           "rank_seconds": float(ex.rank_seconds.mean()), "seconds": float(ex.seconds.mean()),
                           "speedup": exact_seconds / float(ex.rank_seconds.mean()),
                           **({} if text else _survival(run, held))}
    table = pd.DataFrame(results).T
    print(f"{len(held)} held-out chains of {args.exact}; exact greedy timed on {args.time_exact} of them\n")
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 200):
        print(table)
    write_text(json.dumps({"exact": args.exact, "pruner": pruner, "chains": held, "keep_ratio": KEEP,
                           "methods": results}, indent=2, default=float), Path(args.out))
    print(f"\nwrote {args.out}")


def _survival(run: str | Path, held: list[str]) -> dict[str, float]:
    """Each category's survival ratio (over uniform deletion) at keep 0.5 on the held-out chains."""
    annotate_run(run)  # always: a run resumed with more chains would keep stale labels
    tokens = load_tokens(run)
    table = category_survival(tokens[tokens.example_id.isin(held)], ratios=[KEEP])
    return {f"ratio {DISPLAY[r.category]}": float(r.ratio) for r in table.itertuples()}


if __name__ == "__main__":
    main()
