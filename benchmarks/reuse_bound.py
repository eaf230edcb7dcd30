"""Would reusing candidates' segments across greedy steps pay? Lower bounds from real deletion orders.

    python benchmarks/reuse_bound.py RUN [RUN ...]

For every exact-greedy example of the runs, replays its deletion order and counts the model tokens
one exact step needs under two schemes (equal adjacent tokens scored once in both):

- ``segment`` (implemented): candidate k (reasoning index, current sequence of T tokens) computes
  its own segment, positions p+k .. T-3 of the shortened sequence: T - 2 - p - k tokens; after the
  deletion, the new state recomputes the same span of the chosen candidate.
- ``reuse``: a candidate before the previous deletion d keeps the previous step's segment up to it
  and recomputes only from p+d-1: T - 1 - p - d tokens (it must then keep every candidate's
  key/value segment between steps).

Prints the deletion position (share of the chain) distribution and both totals; writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def step_costs(p: int, a: int, reasoning: list[int], order: list[int]) -> tuple[int, int, list[float]]:
    kept = list(range(len(reasoning)))
    segment = reuse = 0
    where: list[float] = []
    previous: int | None = None
    for position in order:
        total = p + len(kept) + a
        tokens = [reasoning[k] for k in kept]
        fresh = [k for k in range(len(kept)) if k == 0 or tokens[k] != tokens[k - 1]]
        j = kept.index(position)
        where.append(j / max(1, len(kept) - 1))
        for k in fresh:
            own = total - 2 - p - k
            segment += own
            reuse += min(own, total - 1 - p - previous) if previous is not None and k < previous else own
        advance = total - 2 - p - j
        segment += advance
        reuse += advance
        previous = j
        kept.pop(j)
    return segment, reuse, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "reuse_bound.json"))
    args = parser.parse_args()
    rows, where = [], []
    for run in args.runs:
        examples = pd.read_parquet(Path(run) / "examples.parquet")
        for _, ex in examples[examples.method == "greedy"].iterrows():
            segment, reuse, w = step_costs(len(ex.prompt_ids), len(ex.post_ids), list(ex.reasoning_ids), list(ex.order))
            where += w
            rows.append({"example_id": ex.example_id, "n": len(ex.reasoning_ids), "segment": segment, "reuse": reuse,
                         "saving": 1 - reuse / segment})
    table = pd.DataFrame(rows)
    hist, edges = np.histogram(where, bins=10, range=(0, 1))
    print("deletion position (share of the current chain):")
    for count, lo in zip(hist, edges):
        print(f"  {lo:.1f}-{lo + 0.1:.1f}  {count / len(where):6.1%}")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    total = 1 - table.reuse.sum() / table.segment.sum()
    print(f"\nreuse would save {total:.1%} of the segment scheme's tokens over {len(table)} examples")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"examples": rows, "position_histogram": hist.tolist(),
                                          "saving_total": total}, indent=2))


if __name__ == "__main__":
    main()
