"""Naive vs exact greedy vs greedy-fast on the same GSM8K chains: time, tokens, agreement.

    python benchmarks/bench_pruning.py [--examples 4] [--threads 1] [--fast 0.1,10 0.05,20]

Prints a table and writes JSON (default ``benchmarks/results/pruning.json``). Targets on a CPU:
``greedy`` >= 4x faster than naive with identical orders; ``greedy-fast`` >= 25x faster than
naive with Spearman >= 0.95 against exact.
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
from prunelens.pruning import NaiveReference
from prunelens.store import write_text

ROOT = Path(__file__).resolve().parents[1]


def pick_examples(model, source: str, count: int, low: int, high: int):
    """``count`` chains evenly spread over those with ``low..high`` reasoning tokens (first 300)."""
    pool = [(e, render(e, model.tokenizer)) for e in load_examples(source, limit=300)]
    pool = sorted([x for x in pool if low <= len(x[1].reasoning_ids) <= high], key=lambda x: len(x[1].reasoning_ids))
    return [pool[int(i)] for i in np.linspace(0, len(pool) - 1, count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=f"gsm8k:{ROOT.parent / 'shared/data/gsm8k/train.jsonl'}")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--min-tokens", type=int, default=25)
    parser.add_argument("--max-tokens", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--fast", nargs="*", default=["0.1,10", "0.05,20"], help="greedy-fast share,refresh")
    parser.add_argument("--no-naive", action="store_true", help="skip naive (speed-ups are then against greedy)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/pruning.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    rows = []
    for example, layout in pick_examples(model, args.data, args.examples, args.min_tokens, args.max_tokens):
        n = len(layout.reasoning_ids)
        row = {"example_id": example.id, "n_reasoning": n, "n_total": len(layout)}
        if not args.no_naive:
            naive = NaiveReference(model)
            start = time.perf_counter()
            naive_order, naive_traj = naive.run(layout)
            row["naive"] = {"seconds": time.perf_counter() - start, "tokens": naive.tokens}
        exact = prune(model, layout, "greedy")
        row["greedy"] = {"seconds": exact.seconds, "tokens": exact.tokens_processed}
        if not args.no_naive:
            row["greedy"]["same_order_as_naive"] = exact.order == naive_order
            row["greedy"]["max_trajectory_gap"] = float(np.abs(np.array(exact.trajectory) - naive_traj).max())
        for setting in args.fast:
            share, refresh = setting.split(",")
            fast = prune(model, layout, "greedy-fast", fast=(float(share), int(refresh)))
            row[f"greedy-fast {setting}"] = {
                "seconds": fast.seconds, "tokens": fast.tokens_processed,
                "spearman_vs_exact": float(spearmanr(fast.deleted_step, exact.deleted_step)[0]),
                "max_trajectory_gap": float(np.abs(np.array(fast.trajectory) - exact.trajectory).max()),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_text(json.dumps({"partial": True, "rows": rows}, indent=2), Path(args.out))  # a killed run keeps its rows
    reference = "greedy" if args.no_naive else "naive"
    methods = ([] if args.no_naive else ["naive"]) + ["greedy"] + [f"greedy-fast {s}" for s in args.fast]
    summary = {}
    print(f"\n{'method':<22}{'s/example':>10}{'Mtokens':>9}{'speed-up':>10}{'spearman':>10}{'same order':>11}")
    for method in methods:
        seconds = sum(r[method]["seconds"] for r in rows) / len(rows)
        tokens = sum(r[method]["tokens"] for r in rows) / len(rows)
        speedup = sum(r[reference]["seconds"] for r in rows) / sum(r[method]["seconds"] for r in rows)
        rho = [r[method]["spearman_vs_exact"] for r in rows if "spearman_vs_exact" in r[method]]
        same = [r[method]["same_order_as_naive"] for r in rows if "same_order_as_naive" in r[method]]
        summary[method] = {"seconds_per_example": seconds, "tokens_per_example": tokens,
                           f"speedup_vs_{reference}": speedup,
                           "spearman_mean": float(np.mean(rho)) if rho else None,
                           "spearman_min": float(np.min(rho)) if rho else None,
                           "same_order": all(same) if same else None}
        print(f"{method:<22}{seconds:>10.1f}{tokens / 1e6:>9.3f}{speedup:>9.1f}x"
              f"{(f'{np.mean(rho):.3f}' if rho else '-'):>10}{(str(all(same)) if same else '-'):>11}")
    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "threads": torch.get_num_threads(), "device": str(model.device), "torch": torch.__version__},
              "model": args.model, "data": args.data, "rows": rows, "summary": summary}
    write_text(json.dumps(result, indent=2), Path(args.out))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
