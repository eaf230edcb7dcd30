"""Naive vs exact greedy vs greedy-fast on the same GSM8K chains, in one run: time, tokens, fidelity.

    python benchmarks/bench_pruning.py [--lengths 40,70,100,150] [--threads 2] [--naive-steps 3]

For each chain (the first of the first 1,000 GSM8K train chains nearest each length):

- ``naive``: one full forward pass per candidate (``NaiveReference``). Its token count is exact
  arithmetic; it is timed on its first ``--naive-steps`` steps (whose choices must equal exact
  greedy's) and its seconds extrapolated at the measured seconds per token (``0``: run it all);
- ``greedy``: the exact engine, full order; tokens processed beside the scheme's lower bound;
- ``greedy-fast`` (each ``--fast`` setting) and ``greedy-batch`` (each ``--batch`` share): full
  order; normalised objective at keep 0.75/0.5/0.25 ((method - random) / (exact - random), random =
  one seeded random order scored exactly) and Spearman against exact.

Prints a table and writes JSON (default ``benchmarks/results/pruning-cpu.json``). Targets on this CPU:
exact >= 5x naive with identical orders and tokens within 1.2x of the lower bound; an approximate
search (greedy-fast, greedy-batch) >= 20x naive with mean normalised objective >= 0.95 at keep 0.5.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from prunelens import load_examples, load_model, prune, render
from prunelens.schema import COMPARE_KEEPS
from prunelens.ops import n_to_delete
from prunelens.pruning import Engine, NaiveReference, PruneConfig
from prunelens.store import write_text

ROOT = Path(__file__).resolve().parents[1]
RATIOS = COMPARE_KEEPS


def pick_examples(model, source: str, lengths: list[int], pool_size: int = 1000):
    """For each length, the first chain of the pool whose reasoning has the nearest token count."""
    pool = [(e, render(e, model.tokenizer)) for e in load_examples(source, limit=pool_size)]
    return [min(pool, key=lambda x: abs(len(x[1].reasoning_ids) - n)) for n in lengths]


def normalised(trajectory, exact, random, n) -> dict[str, float]:
    out = {}
    for ratio in RATIOS:
        k = n_to_delete(n, ratio)
        gap = exact[k] - random[k]
        out[f"normalised@{ratio:g}"] = float((trajectory[k] - random[k]) / gap) if abs(gap) > 1e-9 else float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=f"gsm8k:{ROOT / 'data/gsm8k/train.jsonl'}")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lengths", default="40,70,100,150", help="reasoning token counts to pick chains near")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--naive-steps", type=int, default=3, help="naive steps timed (0: the whole naive run)")
    parser.add_argument("--fast", nargs="*", default=["0.05,20,4"], help="greedy-fast settings share,refresh,neighbours")
    parser.add_argument("--batch", nargs="*", default=["0.1"], help="greedy-batch settings: batch_share")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/pruning-cpu.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    rows = []
    for example, layout in pick_examples(model, args.data, [int(x) for x in args.lengths.split(",")]):
        n = len(layout.reasoning_ids)
        row = {"example_id": example.id, "n_reasoning": n, "n_total": len(layout)}
        exact = prune(model, layout)
        row["greedy"] = {"seconds": exact.seconds, "tokens": exact.tokens_processed,
                         "lower_bound": exact.tokens_needed}
        naive = NaiveReference(model)
        steps = n if args.naive_steps <= 0 else min(args.naive_steps, n)
        start = time.perf_counter()
        naive_order, naive_trajectory = naive.run(layout, steps)
        seconds = time.perf_counter() - start
        total = NaiveReference.tokens_for(layout)
        row["naive"] = {"seconds": seconds * total / naive.tokens, "tokens": total, "steps_timed": steps,
                        "seconds_per_token": seconds / naive.tokens}
        row["greedy"]["same_order_as_naive"] = naive_order == exact.order[:steps]
        row["greedy"]["max_trajectory_gap"] = float(np.abs(np.array(naive_trajectory) - exact.trajectory[: steps + 1]).max())
        random_order = [int(i) for i in np.random.default_rng(0).permutation(n)]
        engine = Engine(model)
        random = engine.trajectory(layout.ids, len(layout.prompt_ids), len(layout.post_ids), random_order)
        approximate = [(f"greedy-fast {s}", PruneConfig(method="greedy-fast", fast_share=float(s.split(",")[0]),
                                                         fast_refresh=int(s.split(",")[1]),
                                                         fast_neighbours=int(s.split(",")[2]))) for s in args.fast]
        approximate += [(f"greedy-batch {s}", PruneConfig(method="greedy-batch", batch_share=float(s))) for s in args.batch]
        for name, config in approximate:
            result = prune(model, layout, config)
            row[name] = {
                "seconds": result.seconds, "tokens": result.tokens_processed, "lower_bound": result.tokens_needed,
                "spearman_vs_exact": float(spearmanr(result.deleted_step, exact.deleted_step)[0]),
                **normalised(result.trajectory, exact.trajectory, random, n)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_text(json.dumps({"partial": True, "rows": rows}, indent=2), Path(args.out))  # a killed run keeps its rows
    methods = ["naive", "greedy"] + [f"greedy-fast {s}" for s in args.fast] + [f"greedy-batch {s}" for s in args.batch]
    print(f"\n{'chain':<12}{'N':>5}" + "".join(f"{m:>22}" for m in methods))
    for r in rows:
        cells = [f"{r[m]['seconds']:9.0f}s {r['naive']['seconds'] / r[m]['seconds']:5.1f}x" for m in methods]
        print(f"{r['example_id']:<12}{r['n_reasoning']:>5}" + "".join(f"{c:>22}" for c in cells))
    summary = {}
    for method in methods:
        speedups = [r["naive"]["seconds"] / r[method]["seconds"] for r in rows]
        entry = {"seconds_mean": float(np.mean([r[method]["seconds"] for r in rows])),
                 "speedup_vs_naive_min": float(np.min(speedups)), "speedup_vs_naive_mean": float(np.mean(speedups))}
        if "lower_bound" in rows[0][method]:
            entry["tokens_over_lower_bound_max"] = float(max(r[method]["tokens"] / r[method]["lower_bound"] for r in rows))
        if method.startswith(("greedy-fast", "greedy-batch")):
            for key in ["spearman_vs_exact"] + [f"normalised@{x:g}" for x in RATIOS]:
                entry[f"{key}_mean"] = float(np.nanmean([r[method][key] for r in rows]))
        summary[method] = entry
        print(f"{method:<22}" + "  ".join(f"{k}={v:.3g}" for k, v in entry.items()))
    same = all(r["greedy"]["same_order_as_naive"] for r in rows)
    print(f"exact greedy's choices equal naive's on every timed step: {same}")
    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "threads": torch.get_num_threads(), "device": str(model.device), "torch": torch.__version__},
              "model": args.model, "data": args.data, "rows": rows, "summary": summary, "same_order": same}
    write_text(json.dumps(result, indent=2), Path(args.out))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
