"""The report's tables as Markdown (``summary.md``): what the docs quote, so no number is copied by hand.

One table of students per eval set and keep ratio (the untrained base model and the controls on
each, then the methods at that ratio by mean accuracy, best first), and one of the planned
comparisons that are done.
"""

from __future__ import annotations

import math

import pandas as pd

from .config import CONTROLS
from .stats import RESAMPLES

STUDENT_COLUMNS = ("student", "accuracy by seed", "mean", "training-chain tokens",
                   "broken numbers in training chains", "training chains stating the result", "reply tokens")
COMPARISON_COLUMNS = ("#", "A - B", "difference (95% CI)", "p", "p (Holm)", "log-odds, mixed model (95%)", "verdict")


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _number(value: float, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _student_row(name: str, rows: pd.DataFrame) -> list[str]:
    """One condition's seeds, in seed order, as a table row."""
    rows = rows.sort_values("seed")
    seeds = " / ".join(f"{a:.3f} (s{s})" if not pd.isna(s) else f"{a:.3f}" for a, s in zip(rows.accuracy, rows.seed))
    return [name, seeds, f"{rows.accuracy.mean():.3f}", _number(rows.mean_train_reasoning_tokens.mean(), 1),
            _number(rows.train_broken_numbers.mean(), 2), _number(rows.train_result_kept.mean(), 2),
            f"{rows.mean_output_tokens.mean():.1f}"]


def students_table(results: pd.DataFrame, eval_set: str, keep_ratio: float) -> str:
    """The students on ``eval_set``: base, the controls, then each method at ``keep_ratio`` (best mean first)."""
    on = results[results.eval_set == eval_set]
    base = on[on.method == "base"]
    rows = []
    if len(base):
        rows.append(_student_row("base model (not trained)", base))
        rows[0][3] = "-"  # trained on nothing: no training chains (0 only to place it on the figure)
    rows += [_student_row(c, on[on.method == c]) for c in CONTROLS if (on.method == c).any()]
    methods = on[~on.method.isin(["base", *CONTROLS]) & (on.keep_ratio == keep_ratio)]
    ranked = methods.groupby("method", sort=False).accuracy.mean().sort_values(ascending=False, kind="stable")
    rows += [_student_row(f"{m}@{keep_ratio:g}", methods[methods.method == m]) for m in ranked.index]
    return _table(STUDENT_COLUMNS, rows)


def _p(value: float, resamples: int) -> str:
    """A two-sided bootstrap p of 0 means no resample crossed zero: below the smallest one it can show."""
    return f"< {2 / resamples:g}" if value == 0 else f"{value:.4f}"


def comparisons_table(comparisons: pd.DataFrame, resamples: int) -> str:
    """The done comparisons: the family numbered as planned (Holm beside), the secondary ones marked ``s``.

    ``resamples`` is the bootstrap's (``plan.json``): a p of 0 is shown as below ``2 / resamples``.
    """
    rows, number = [], 0
    for _, c in comparisons.iterrows():
        family = c.family == "family"
        number += family
        if c.status != "done":
            continue
        rows.append([str(number) if family else "s", f"{c.a} - {c.b}",
                     f"{c.difference:+.3f} ({c.ci_low:+.3f}, {c.ci_high:+.3f})", _p(c.p_value, resamples),
                     _p(c.p_holm, resamples) if family else "-",
                     f"{c.log_odds:+.2f} ({c.log_odds_low:+.2f}, {c.log_odds_high:+.2f})", c.verdict])
    return _table(COMPARISON_COLUMNS, rows)


def summary(results: pd.DataFrame, comparisons: pd.DataFrame | None = None, resamples: int = RESAMPLES) -> str:
    """``summary.md``: a students table per eval set and keep ratio, then the comparisons (with their plan's
    bootstrap ``resamples``)."""
    parts = ["# Distillation report\n\nWritten by `prunelens distill --report`; every number is in "
             "`results.csv` and `comparisons.csv` beside it.\n"]
    ratios = results.loc[~results.method.isin(["base", *CONTROLS]), "keep_ratio"].drop_duplicates()
    for eval_set in results.eval_set.drop_duplicates():
        for ratio in ratios:
            parts.append(f"## Eval set `{eval_set}`, keep {ratio:g}\n\n{students_table(results, eval_set, ratio)}\n")
    if comparisons is not None:
        parts.append(f"## Planned comparisons\n\n{comparisons_table(comparisons, resamples)}\n")
    return "\n".join(parts)
