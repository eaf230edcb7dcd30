"""The study of one run: every table (``analyze``) and the numbers it is summarised by (``headline``).

``analyze(RUN)`` joins ``tokens``, ``features`` and ``categories`` on ``(example_id, position)`` and
writes CSV tables under ``RUN/analysis/``. Any method's run works, so greedy can be set beside the
baselines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import RunError
from ..numbers import problem_texts
from ..ops import progress_bar
from ..schema import ANALYSIS, DISPLAY, DYNAMIC, EXAMPLES, HEADLINE_FEATURE, HEADLINE_KEEP, load_tokens, read_table
from ..store import write_table, write_text
from .tables import (broken_numbers, category_classifier, category_rank, category_survival, drop_regression,
                     dynamic_regression, permutation_importance, rank_regression, survival_classifier)


def analyze(run: str | Path, out: str | Path | None = None, show_progress: bool = True,
            linear_only: bool = False) -> dict[str, pd.DataFrame]:
    """Write every analysis table of ``run`` under ``out`` (default ``RUN/analysis``); return them.

    ``linear_only`` skips gradient boosting (ridge and logistic regression only): a quicker look.
    """
    tokens = load_tokens(run)
    has_features = HEADLINE_FEATURE in tokens
    has_categories = "category" in tokens
    if not (has_features or has_categories):
        raise RunError(f"{run} has neither features nor categories: run `prunelens features` and `prunelens annotate`")
    dynamic = Path(run) / f"{DYNAMIC}.parquet"
    examples = read_table(run, EXAMPLES)
    start = examples.set_index("example_id").objective_trajectory.map(lambda t: float(t[0]))
    out = Path(out) if out else Path(run) / ANALYSIS
    jobs = [("broken_numbers", lambda: broken_numbers(tokens, problem_texts(examples)))]
    if has_features:
        regressors = ("ridge",) if linear_only else ("ridge", "boosting")
        classifiers = ("logistic",) if linear_only else ("logistic", "boosting")
        jobs += [("rank_regression", lambda: rank_regression(tokens, regressors)),
                 ("rank_importance", lambda: permutation_importance(tokens)),
                 ("drop_regression", lambda: drop_regression(tokens, regressors, start)),
                 ("survival_classifier", lambda: survival_classifier(tokens, models=classifiers))]
    if has_categories:
        jobs += [("category_survival", lambda: category_survival(tokens)),
                 ("category_rank", lambda: category_rank(tokens))]
    if has_features and has_categories:
        jobs.append(("category_classifier", lambda: category_classifier(tokens)))
    if dynamic.exists():
        models = ("ridge",) if linear_only else ("ridge", "boosting", "mlp")
        jobs.append(("dynamic_regression", lambda: dynamic_regression(pd.read_parquet(dynamic), models)))
    tables: dict[str, pd.DataFrame] = {}
    extra = {"rank_regression": "rank_predictions", "category_rank": "category_pairs",
             "category_classifier": "category_confusion"}
    for name, job in progress_bar(jobs, desc="analysis", unit="table", disable=not show_progress):
        result = job()
        if isinstance(result, tuple):
            tables[name], tables[extra[name]] = result
        else:
            tables[name] = result
    for name, table in tables.items():
        if name == "rank_predictions":
            write_table(table, out / f"{name}.parquet")
        else:
            write_text(table.to_csv(index=False), out / f"{name}.csv")
    return tables


HEADLINE_SOURCES = {  # what each headline number is, and where it comes from
    "ratio@": "survival of a category against uniform deletion at keep 0.5 (category_survival.csv; "
              "figure category_survival.png; above 1: kept more than uniform deletion would keep)",
    "broken numbers@": "share of the numbers the kept chains state that the problem never states (broken_numbers.csv)",
    "attention->rank": "Spearman of predicted and actual deletion rank from attention features (rank_regression.csv)",
    "attention->first-step": "Pearson of predicted and actual objective drop of deleting each token at step 1 "
                             "(drop_regression.csv)",
    "attention->post-deletion": "Pearson of predicted and actual post-deletion objective, beside the published 0.88 "
                                "(drop_regression.csv, dynamic_regression.csv)",
}
SMALL_RUN = 20  # fewer chains than this: correlations and intervals are too noisy to read


def headline(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The numbers a run is summarised by (``HEADLINE_SOURCES`` says which table holds each): each
    category's survival against uniform deletion at keep 0.5 (by display name, as the figures say
    it), broken numbers, attention-to-rank Spearman and the published r."""
    out: dict[str, float] = {}
    if "category_survival" in tables:
        half = tables["category_survival"]
        for row in half[np.isclose(half.keep_ratio, HEADLINE_KEEP)].itertuples():
            out[f"ratio@{HEADLINE_KEEP:g} {DISPLAY.get(row.category, row.category)}"] = float(row.ratio)
    if "broken_numbers" in tables:
        half = tables["broken_numbers"]
        for row in half[np.isclose(half.keep_ratio, HEADLINE_KEEP)].itertuples():
            out[f"broken numbers@{HEADLINE_KEEP:g}"] = float(row.broken)
            out[f"broken numbers@{HEADLINE_KEEP:g} uniform"] = float(row.uniform)
    if "rank_regression" in tables:
        reg = tables["rank_regression"]
        for model in ("ridge", "boosting"):
            hit = reg[(reg.feature_set == "attention") & (reg.model == model)]
            if len(hit):
                out[f"attention->rank spearman ({model})"] = float(hit.spearman.iloc[0])
    if "dynamic_regression" in tables:
        dyn = tables["dynamic_regression"]
        hit = dyn[(dyn.target == "post_objective") & (dyn.keep_ratio == "pooled")]
        if len(hit):
            out["attention->post-deletion objective pearson (every step, best)"] = float(hit.pearson.max())
    if "drop_regression" in tables and "pearson" in tables["drop_regression"]:
        best = tables["drop_regression"]
        for target, label in (("drop", "first-step drop"), ("post_objective", "post-deletion objective")):
            hit = best[(best.feature_set == "attention") & (best.target == target)]
            if len(hit):
                out[f"attention->{label} pearson (best)"] = float(hit.pearson.max())
    return out
