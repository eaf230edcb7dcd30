"""Comparing runs: how alike two deletion orders are, how well one run keeps the objective
against exact greedy and random deletion (the normalised objective), and how category survival
differs between two runs of the same problems."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import RunError
from ..modelling import BOOTSTRAP, spearman
from ..ops import n_to_delete
from ..schema import COMPARE_KEEPS, HEADLINE_KEEP, LABELS, present_at, reaches
from ..store import natural_key
from .tables import category_counts


def order_agreement(tokens: pd.DataFrame, other: pd.DataFrame, ratios: Sequence[float] = COMPARE_KEEPS
                    ) -> pd.DataFrame:
    """How alike two runs' deletion orders are, per example they share (say greedy-fast against greedy).

    ``spearman``: between the deletion steps; ``same_first``: how many first deletions are
    identical; ``agree@R``: share of tokens both runs keep or both delete at keep ratio R.
    """
    keys = ["example_id", "position"]
    both = tokens[keys + ["token_id", "deleted_step"]].merge(
        other[keys + ["token_id", "deleted_step"]], on=keys, suffixes=("", "_other"), validate="one_to_one")
    if len(both) and (both.token_id != both.token_id_other).any():
        bad = both.loc[both.token_id != both.token_id_other, "example_id"].iloc[0]
        raise RunError(f"the runs tokenise {bad} differently: compare runs of the same model and data")
    other_steps = both.assign(deleted_step=both.deleted_step_other)
    agree = {f"agree@{ratio:g}": (present_at(both, ratio) == present_at(other_steps, ratio)
                                  if reaches(both, ratio) and reaches(other_steps, ratio) else pd.Series(np.nan, both.index))
             for ratio in ratios}
    rows = []
    for example_id, idx in both.groupby("example_id", sort=False).indices.items():
        chain = both.iloc[idx].sort_values("position")
        a, b = (chain[c].astype("float").to_numpy() for c in ("deleted_step", "deleted_step_other"))
        order_a, order_b = (np.argsort(np.where(np.isnan(x), np.inf, x), kind="stable") for x in (a, b))
        done = int(min(np.sum(~np.isnan(a)), np.sum(~np.isnan(b))))
        same = next((k for k in range(done) if order_a[k] != order_b[k]), done)
        rows.append({"example_id": example_id, "n_reasoning": len(chain), "spearman": spearman(a, b),
                     "same_first": same, **{name: float(flags.iloc[idx].mean()) for name, flags in agree.items()}})
    if not rows:
        raise RunError("the runs share no example")
    return pd.DataFrame(rows)


def objective_at(examples: pd.DataFrame, ratio: float) -> pd.Series:
    """Each example's exact objective once ``ratio`` of its tokens are kept (NaN if the run stopped earlier)."""
    def at(row) -> float:
        k = n_to_delete(int(row.n_reasoning), ratio)
        trajectory = row.objective_trajectory
        return float(trajectory[k]) if k < len(trajectory) else np.nan
    return pd.Series([at(row) for row in examples.itertuples()], index=examples.example_id.to_numpy())


def normalised_objective(method: pd.DataFrame, exact: pd.DataFrame, random: pd.DataFrame,
                         ratios: Sequence[float] = COMPARE_KEEPS) -> pd.DataFrame:
    """(method - random) / (exact greedy - random) of the objective at each keep ratio, per shared example.

    1 is as good as exact greedy, 0 no better than random deletion; NaN where exact and random tie.
    Inputs are the three runs' ``examples`` tables.
    """
    shared = sorted(set(method.example_id) & set(exact.example_id) & set(random.example_id), key=natural_key)
    if not shared:
        raise RunError("the runs share no example")
    frame = pd.DataFrame({"example_id": shared})
    for ratio in ratios:
        m, e, r = (objective_at(t, ratio).reindex(shared).to_numpy() for t in (method, exact, random))
        gap = e - r
        frame[f"normalised@{ratio:g}"] = np.where(np.abs(gap) > 1e-9, (m - r) / np.where(gap == 0, 1, gap), np.nan)
    return frame


def survival_difference(tokens: pd.DataFrame, other: pd.DataFrame, ratio: float = HEADLINE_KEEP,
                        seed: int = 0) -> pd.DataFrame:
    """Each category's survival ratio to uniform deletion at keep ``ratio`` in two runs of the same
    problems (say a model's own chains and the reference chains), and their difference.

    Only examples both runs hold count. The 95% intervals are a paired bootstrap over those examples:
    each draw resamples the same examples for both runs, so the difference's interval sees that one
    problem's two chains go together. The chains may differ in length and tokens.
    """
    shared = sorted(set(tokens.example_id) & set(other.example_id), key=natural_key)
    if not shared:
        raise RunError("the runs share no example")
    index = {e: i for i, e in enumerate(shared)}
    counts = [category_counts(t[t.example_id.isin(index)], ratio) for t in (tokens, other)]
    draws = np.random.default_rng(seed).integers(0, len(shared), size=(BOOTSTRAP, len(shared)))
    rows = []
    for category in [c for c in LABELS if any(c in set(per.category) for per in counts)]:
        mat = np.zeros((2, 3, len(shared)))  # run x (present, expected, count) x example
        for k, per in enumerate(counts):
            sub = per[per.category == category]
            mat[k][:, sub.example_id.map(index).to_numpy(dtype=np.int64)] = sub[["present", "expected", "count"]].to_numpy().T
        with np.errstate(divide="ignore", invalid="ignore"):
            point = mat[:, 0].sum(1) / mat[:, 1].sum(1)
            boot = mat[:, 0][:, draws].sum(2) / mat[:, 1][:, draws].sum(2)  # run x draw
        diff = boot[0] - boot[1]
        rows.append({"category": category, "keep_ratio": ratio, "examples": len(shared),
                     "tokens": int(mat[0, 2].sum()), "tokens_other": int(mat[1, 2].sum()),
                     "ratio": point[0], "ratio_other": point[1], "difference": point[0] - point[1],
                     "difference_ci_low": np.nanpercentile(diff, 2.5) if np.isfinite(diff).any() else np.nan,
                     "difference_ci_high": np.nanpercentile(diff, 97.5) if np.isfinite(diff).any() else np.nan})
    return pd.DataFrame(rows)
