"""Eager against sdpa attention for scoring on this machine: the engine's packed step 1 and naive step 1.

    python benchmarks/bench_attention.py [--length 100] [--threads 2] [--full]

On one GSM8K chain (the first of the first 1,000 train chains nearest ``--length`` reasoning
tokens), for each attention implementation: load the model with it, score every single deletion
of the unpruned chain once through the engine (packed rows, 4D mask, no memo) and once naively
(one full pass per candidate), and time both; with ``--full``, also exact greedy to the end (its
seconds, and whether both implementations give one order). Prints a table and writes JSON (default
``benchmarks/results/attention-cpu.json``) with the largest score gaps between the two paths and
between the two implementations.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bench_pruning import pick_examples  # this folder is on the path when run as a script
from prunelens import load_model, prune
from prunelens.pruning import Engine, NaiveReference
from prunelens.store import write_text

ROOT = Path(__file__).resolve().parents[1]


def step_one(model, layout) -> dict:
    """Seconds, tokens and scores of step 1 through the engine and the naive algorithm."""
    n, p, a = len(layout.reasoning_ids), len(layout.prompt_ids), len(layout.post_ids)
    engine = Engine(model, reuse=False)
    state = engine.state(layout.ids, p, a)
    engine.score(state, [[0]])  # warm-up
    engine.tokens = 0
    start = time.perf_counter()
    packed = engine.score(state, [[k] for k in range(n)])
    packed_seconds = time.perf_counter() - start
    naive = NaiveReference(model)
    naive.candidate_scores(layout, [0, 1])  # warm-up
    naive.tokens = 0
    start = time.perf_counter()
    full = naive.candidate_scores(layout, list(range(n)))
    naive_seconds = time.perf_counter() - start
    return {"engine_seconds": packed_seconds, "engine_tokens": engine.tokens, "naive_seconds": naive_seconds,
            "naive_tokens": naive.tokens, "max_gap_engine_vs_naive": float(np.abs(np.subtract(packed, full)).max()),
            "engine_scores": packed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=f"gsm8k:{ROOT / 'data/gsm8k/train.jsonl'}")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--length", type=int, default=100, help="reasoning tokens of the chain picked")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--full", action="store_true", help="also time exact greedy to the end")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/attention-cpu.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    [(example, layout)] = pick_examples(load_model(args.model, weights=False), args.data, [args.length])
    rows = {}
    for attention in ("eager", "sdpa"):
        model = load_model(args.model, attention=attention)
        rows[attention] = {"example_id": example.id, "n_reasoning": len(layout.reasoning_ids),
                           **step_one(model, layout)}
        if args.full:
            result = prune(model, layout)
            rows[attention].update(greedy_seconds=result.seconds, greedy_order=result.order)
    gap = float(np.abs(np.subtract(rows["eager"].pop("engine_scores"), rows["sdpa"].pop("engine_scores"))).max())
    if args.full:
        same = rows["eager"].pop("greedy_order") == rows["sdpa"].pop("greedy_order")
        print(f"exact greedy to the end: eager {rows['eager']['greedy_seconds']:.1f} s, "
              f"sdpa {rows['sdpa']['greedy_seconds']:.1f} s, same order: {same}")
    print(f"{'attention':<10}{'engine s':>10}{'tok/s':>8}{'naive s':>10}{'tok/s':>8}{'naive/engine':>14}")
    for name, r in rows.items():
        print(f"{name:<10}{r['engine_seconds']:>10.2f}{r['engine_tokens'] / r['engine_seconds']:>8.0f}"
              f"{r['naive_seconds']:>10.2f}{r['naive_tokens'] / r['naive_seconds']:>8.0f}"
              f"{r['naive_seconds'] / r['engine_seconds']:>13.2f}x")
    print(f"largest score gap, eager vs sdpa engine: {gap:.2g}")
    result = {"machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}, "model": args.model, "data": args.data,
              "rows": rows, "max_gap_eager_vs_sdpa": gap, **({"greedy_same_order": same} if args.full else {})}
    write_text(json.dumps(result, indent=2), Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
