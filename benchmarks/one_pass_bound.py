"""How far can a one-pass ranking go? Exact step-1 scores used as an order, against greedy.

    python benchmarks/one_pass_bound.py RUN [--random 5] [--out benchmarks/results/one-pass-bound.json]

RUN: an exact-greedy run of whole chains with the dynamic analysis (``prunelens dynamic RUN``). A
one-pass pruner (``learned``, ``attention``, ...) ranks every token once, on the unpruned chain. Its
best possible input is each token's exact drop at step 1 (the objective after deleting it alone,
in ``dynamic.parquet`` at keep 1.0). This script orders tokens by that exact score (smallest drop
first), and by truncation (last token first), and reports their normalised objective at keep 0.75,
0.5 and 0.25 ((method - random) / (exact greedy - random), random averaged over ``--random`` seeded
orders), per chain and in the mean: a ceiling for what imitating step-1 importance can reach.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from prunelens.analysis import normalised_objective
from prunelens.schema import COMPARE_KEEPS
from prunelens.models import load_model
from prunelens.ops import n_to_delete
from prunelens.pruning import Engine
from prunelens.schema import DYNAMIC, EXAMPLES, read_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--random", type=int, default=5, help="random orders per chain")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "one-pass-bound.json")
    args = parser.parse_args()
    exact = read_table(args.run, EXAMPLES)
    step1 = read_table(args.run, DYNAMIC)
    step1 = step1[step1.keep_ratio == 1.0]
    exact = exact[exact.example_id.isin(set(step1.example_id))].reset_index(drop=True)
    engine = Engine(load_model(exact.model.iloc[0]), exact.objective.iloc[0])
    rng = np.random.default_rng(0)
    trajectories: dict[str, list] = {"step-1 exact": [], "truncate": [], "random": []}
    for row in exact.itertuples():
        n = int(row.n_reasoning)
        ids = [*row.prompt_ids, *row.reasoning_ids, *row.post_ids]
        steps = [n_to_delete(n, r) for r in COMPARE_KEEPS]

        def at(order) -> np.ndarray:
            return np.array(engine.trajectory(ids, len(row.prompt_ids), len(row.post_ids), list(order), steps))

        drops = step1[step1.example_id == row.example_id].sort_values(["drop", "position"], kind="stable")
        trajectories["step-1 exact"].append(at(drops.position))
        trajectories["truncate"].append(at(range(n - 1, -1, -1)))
        trajectories["random"].append(np.mean([at(rng.permutation(n)) for _ in range(args.random)], axis=0))
        print(row.example_id, flush=True)

    def table(name: str) -> pd.DataFrame:
        return exact.assign(objective_trajectory=trajectories[name])

    rows = {name: normalised_objective(table(name), exact, table("random")) for name in ("step-1 exact", "truncate")}
    summary = {name: {c: float(frame[c].mean()) for c in frame.columns if c != "example_id"}
               for name, frame in rows.items()}
    print(f"\n{len(exact)} chains of {args.run}, mean normalised objective (1 = exact greedy, 0 = random):")
    print(pd.DataFrame(summary).T.round(2).to_string())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"run": str(args.run), "chains": len(exact), "random_orders": args.random,
                                    "mean": summary,
                                    "per_chain": {name: frame.to_dict(orient="records") for name, frame in rows.items()}},
                                   indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
