"""Exact greedy with two versions of the code on the same chains, in one run: did a change slow it?

    python benchmarks/bench_versions.py --before DIR --after DIR [--lengths 40,70] [--repeats 2]

``DIR`` is a checkout's ``src`` folder (a ``git worktree`` of the commit to compare). Each timing
is its own process with that folder first on the path, one torch thread pool of ``--threads``;
versions alternate (before, after, before, after, ...) so drift of the machine falls on both. For
each chain (the first of the first 1,000 GSM8K train chains nearest each length): seconds of exact
greedy per version (the best of ``--repeats``), their ratio, and whether the orders are identical.
Prints a table and writes JSON (default ``benchmarks/results/versions-cpu.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE = """
import json, sys, time, torch
torch.set_num_threads({threads})
from prunelens import load_examples, load_model, prune, render
model = load_model("{model}", "cpu")
pool = [(e, render(e, model.tokenizer)) for e in load_examples("{data}", limit=1000)]
example, layout = min(pool, key=lambda x: abs(len(x[1].reasoning_ids) - {length}))
start = time.perf_counter()
order = prune(model, layout, method="greedy").order
print(json.dumps({{"id": example.id, "n": len(layout.reasoning_ids), "seconds": time.perf_counter() - start,
                  "order": order}}))
"""


def time_once(src: str, length: int, args) -> dict:
    code = ONE.format(threads=args.threads, model=args.model, data=args.data, length=length)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1",
                                 **({"PRUNELENS_CACHE": args.cache} if args.cache else {})})
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="src folder of the version before the change")
    parser.add_argument("--after", default=str(ROOT / "src"), help="src folder of the version after (default: this one)")
    parser.add_argument("--lengths", default="40,70")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=f"gsm8k:{ROOT / 'data/gsm8k/train.jsonl'}")
    parser.add_argument("--cache", default=None, help="PRUNELENS_CACHE for the timed processes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/versions-cpu.json"))
    args = parser.parse_args()
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        runs = {"before": [], "after": []}
        for _ in range(args.repeats):
            for version in ("before", "after"):
                runs[version].append(time_once(getattr(args, version), length, args))
        best = {v: min(r["seconds"] for r in rs) for v, rs in runs.items()}
        rows.append({"example_id": runs["after"][0]["id"], "n_reasoning": runs["after"][0]["n"],
                     "before_seconds": best["before"], "after_seconds": best["after"],
                     "after_over_before": best["after"] / best["before"],
                     "same_order": runs["before"][0]["order"] == runs["after"][0]["order"],
                     "all_seconds": {v: [r["seconds"] for r in rs] for v, rs in runs.items()}})
    print("| chain (N tokens) | before | after | after / before | same order |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['example_id']} ({r['n_reasoning']}) | {r['before_seconds']:.1f} s | {r['after_seconds']:.1f} s | "
              f"{r['after_over_before']:.3f} | {'yes' if r['same_order'] else 'NO'} |")
    commit = {v: subprocess.run(["git", "-C", getattr(args, v), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() for v in ("before", "after")}
    Path(args.out).write_text(json.dumps({"command": "python benchmarks/bench_versions.py --before SRC_OF_" +
                                          commit["before"] + f" --lengths {args.lengths} --repeats {args.repeats}",
                                          "before_commit": commit["before"], "after_commit": commit["after"],
                                          "threads": args.threads, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
