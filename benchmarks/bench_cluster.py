"""One process against a local Ray cluster on the same chains: is `--ray` worth it here?

    python benchmarks/bench_cluster.py [--limit 6] [--max-tokens 30] [--method greedy] [--workers 2]
        [--work runs/bench-cluster] [--out benchmarks/results/cluster.json]

Both runs prune the same GSM8K train chains with the embedded model, in this process one after the
other: first one process with every core as torch threads, then ``--workers`` Ray workers of one
thread each (their start-up, a model load per worker, included in the wall time). Prints and
writes wall seconds, seconds per chain per worker, the speed-up, and whether the two deletion
orders agree (they may differ at near-ties: one thread and two sum in different orders).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import torch

from prunelens.cluster import RayOptions
from prunelens.data import select_examples
from prunelens.models import load_model
from prunelens.pruning import prune_examples
from prunelens.store import write_text

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "data/gsm8k/train.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=30)
    parser.add_argument("--method", default="greedy")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default=str(ROOT / "runs/bench-cluster"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/cluster.json"))
    args = parser.parse_args()

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)  # timings of a resumed run would be meaningless
    model = load_model("smollm2-135m", "cpu")
    examples = select_examples(f"gsm8k:{GSM8K}", model.tokenizer, max_tokens=args.max_tokens, limit=args.limit)
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    start = time.perf_counter()
    prune_examples(model, examples, work / "plain", method=args.method)
    plain = time.perf_counter() - start
    shape = load_model("smollm2-135m", "cpu", weights=False)
    start = time.perf_counter()
    prune_examples(shape, examples, work / "ray", method=args.method,
                   ray=RayOptions("local", workers=args.workers))
    on_ray = time.perf_counter() - start
    orders = [pd.read_parquet(work / run / "examples.parquet").set_index("example_id").order for run in ("plain", "ray")]
    same = sum(list(orders[0][i]) == list(orders[1][i]) for i in orders[0].index)
    n = len(examples)
    result = {
        "command": "python benchmarks/bench_cluster.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("work", "out")),
        "chains": n, "method": args.method, "cores": cores, "workers": args.workers,
        "mean_reasoning_tokens": float(pd.read_parquet(work / "plain/examples.parquet").n_reasoning.mean()),
        "plain_seconds": plain, "ray_seconds": on_ray, "speedup": plain / on_ray,
        "plain_seconds_per_chain": plain / n, "ray_seconds_per_chain_per_worker": on_ray * args.workers / n,
        "identical_orders": same,
    }
    print(f"{n} chains ({result['mean_reasoning_tokens']:.0f} tokens), {args.method}, {cores} cores:")
    print(f"  one process, {cores} threads : {plain:7.1f} s  ({plain / n:.1f} s/chain)")
    print(f"  Ray, {args.workers} workers x 1 thread: {on_ray:7.1f} s  "
          f"({result['ray_seconds_per_chain_per_worker']:.1f} s/chain/worker)   speed-up {plain / on_ray:.2f}x")
    print(f"  identical deletion orders: {same} of {n}")
    write_text(json.dumps(result, indent=2) + "\n", Path(args.out))


if __name__ == "__main__":
    main()
