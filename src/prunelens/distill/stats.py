"""Planned comparisons of students: a paired test over problems *and* seeds, effect sizes, Holm.

A comparison sets condition A beside condition B on one eval set. Each condition has one or more
students (seeds), each answering the same problems right or wrong: ``a[seed, problem]``.

- **Effect**: the difference of mean accuracy, A minus B (over seeds and problems).
- **Primary test: a two-level paired bootstrap.** Each resample draws the problems with
  replacement (one draw for both conditions: the pairing) and, independently, each condition's
  seeds with replacement; the difference is recomputed. The 95% interval is the 2.5 and 97.5
  percentiles; the two-sided p-value is twice the share of resamples on the far side of zero
  (capped at 1). Seed-to-seed spread thus widens the interval, which a McNemar test on one seed
  cannot see; with one seed each it is a paired bootstrap over problems.
- **Sensitivity: a mixed-effects logistic regression** (statsmodels' ``BinomialBayesMixedGLM``,
  variational Bayes): ``correct ~ condition`` with random intercepts for the problem and for the
  student (condition x seed); the condition's log-odds effect with a 95% interval (mean +- 1.96 sd).
- **Holm** correction over the comparisons of one family (statsmodels' ``multipletests``).

``plan.json`` in a distillation directory names the comparisons (``family``: corrected together;
``secondary``: reported without correction); ``planned_comparisons`` reads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

RESAMPLES = 10_000
from ..errors import DataError


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Two-level paired bootstrap of ``mean(a) - mean(b)``; ``a`` is ``[seeds_a, problems]`` and ``b``
    ``[seeds_b, problems]`` of 0/1 (or per-problem scores), the same problems in the same columns.

    Returns ``difference``, ``ci_low``, ``ci_high``, ``p_value`` (see the module docstring).
    """
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError(f"the two conditions must answer the same problems: {a.shape[1]} and {b.shape[1]}")
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    problems = rng.multinomial(n, np.full(n, 1 / n), size=resamples)  # [resamples, problems]: times each is drawn

    def means(x: np.ndarray) -> np.ndarray:
        seeds = rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size=resamples)  # [resamples, seeds]
        return (seeds * (problems @ x.T)).sum(1) / (n * len(x))

    draws = means(a) - means(b)
    difference = float(a.mean() - b.mean())
    p = 2 * min((draws <= 0).mean(), (draws >= 0).mean())
    return {"difference": difference, "ci_low": float(np.percentile(draws, 2.5)),
            "ci_high": float(np.percentile(draws, 97.5)), "p_value": float(min(1.0, p))}


def mixed_logit(a: np.ndarray, b: np.ndarray) -> dict:
    """Log-odds of being right, A against B, from ``correct ~ condition + (1 | problem) + (1 | student)``."""
    import warnings

    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    rows = []
    for treat, x in ((1, np.atleast_2d(a)), (0, np.atleast_2d(b))):
        for s, answers in enumerate(x):
            rows.append(pd.DataFrame({"correct": answers.astype(float), "treat": treat,
                                      "problem": np.arange(len(answers)), "student": f"{treat}-{s}"}))
    frame = pd.concat(rows, ignore_index=True)
    if frame.correct.nunique() < 2:
        return {"log_odds": math.nan, "log_odds_low": math.nan, "log_odds_high": math.nan}
    model = BinomialBayesMixedGLM.from_formula(
        "correct ~ treat", {"problem": "0 + C(problem)", "student": "0 + C(student)"}, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the variational fit
        fit = model.fit_vb()
    mean, sd = float(fit.fe_mean[1]), float(fit.fe_sd[1])
    # the variational fit moves by ~1e-6 between machines: 4 decimals make a rerun write the same file
    return {"log_odds": round(mean, 4), "log_odds_low": round(mean - 1.96 * sd, 4),
            "log_odds_high": round(mean + 1.96 * sd, 4)}


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (NaN stays NaN and is not counted)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, float)
    out = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out.tolist()


def read_plan(path: str | Path) -> dict:
    """A plan file: ``{"eval_set", "alpha", "family": [{"a", "b", "hypothesis"}], "secondary": [...]}``."""
    plan = json.loads(Path(path).read_text())
    for part in ("family", "secondary"):
        for k, row in enumerate(plan.get(part, [])):
            missing = [key for key in ("a", "b") if key not in row]
            if missing:
                raise DataError(f"{path}: {part}[{k}] has no '{missing[0]}'")
    if "eval_set" not in plan:
        raise DataError(f"{path}: no 'eval_set'")
    return plan


def resamples_of(plan: dict) -> int:
    """The bootstrap resamples a plan asks for (``RESAMPLES`` where it names none)."""
    return int(plan.get("resamples", RESAMPLES))


def planned_comparisons(answers: dict[str, pd.DataFrame], plan: dict) -> pd.DataFrame:
    """One row per planned comparison from ``answers`` (``{condition: correct[seed x problem]}``, a
    DataFrame with seeds as rows and problem ids as columns, on the plan's eval set). A comparison
    whose students are not all finished is listed with ``status`` ``pending`` and no numbers."""
    rows = []
    resamples, seed = resamples_of(plan), int(plan.get("seed", 0))
    for part in ("family", "secondary"):
        for item in plan.get(part, []):
            a, b = item["a"], item["b"]
            row = {"family": part, "a": a, "b": b, "hypothesis": item.get("hypothesis", ""),
                   "eval_set": plan["eval_set"]}
            if a not in answers or b not in answers:
                rows.append({**row, "status": "pending"})
                continue
            shared = answers[a].columns.intersection(answers[b].columns)
            x, y = answers[a][shared].to_numpy(float), answers[b][shared].to_numpy(float)
            rows.append({**row, "status": "done", "seeds_a": ",".join(map(str, answers[a].index)),
                         "seeds_b": ",".join(map(str, answers[b].index)), "n_problems": len(shared),
                         "accuracy_a": float(x.mean()), "accuracy_b": float(y.mean()),
                         **paired_bootstrap(x, y, resamples, seed), **mixed_logit(x, y)})
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = np.nan
        family = (table.family == "family") & (table.status == "done")
        if family.any():
            table.loc[family, "p_holm"] = holm(table.loc[family, "p_value"].tolist())
        alpha = float(plan.get("alpha", 0.05))
        shown = table.p_holm.lt(alpha)
        difference = table["difference"] if "difference" in table else pd.Series(np.nan, table.index)
        table["verdict"] = np.where(table.status != "done", "pending",
                                    np.where(~family, "secondary (uncorrected)",
                                             np.where(~shown, "no difference shown",
                                                      np.where(difference > 0, "a > b", "a < b"))))
    return table
