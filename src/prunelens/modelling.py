"""Modelling toolkit shared by the learned pruner and the study: estimators, grouped
cross-validation, correlations and bootstrap intervals.

Every model here is cross-validated by example (``GroupKFold``): no example is in both training
and test folds. Correlations are NaN, without a warning, where they are not defined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .errors import RunError

BOOTSTRAP = 1000


def estimators(kind: str):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Boosting sees 20% of the (hundreds of) features per split and stops early: minutes, not hours.
    boost = dict(max_iter=100, learning_rate=0.1, max_features=0.2, early_stopping=True, random_state=0)
    if kind == "regression":
        from sklearn.neural_network import MLPRegressor

        # mlp: the published predictor's shape, a 2-layer MLP on attention features
        return {"ridge": lambda: make_pipeline(StandardScaler(), Ridge(alpha=10.0)),
                "boosting": lambda: HistGradientBoostingRegressor(**boost),
                "mlp": lambda: make_pipeline(StandardScaler(), MLPRegressor(
                    hidden_layer_sizes=(256, 256), alpha=1e-3, early_stopping=True, max_iter=300, random_state=0))}
    return {"logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            "boosting": lambda: HistGradientBoostingClassifier(**boost)}


def group_folds(groups: np.ndarray, n_splits: int = 5):
    from sklearn.model_selection import GroupKFold

    n = len(np.unique(groups))
    if n < 2:
        raise RunError("cross-validation by example needs at least 2 examples in the run")
    return list(GroupKFold(n_splits=min(n_splits, n)).split(np.zeros(len(groups)), groups=groups))


def cross_predict(make_model, x: np.ndarray, y: np.ndarray, groups: np.ndarray, proba: bool = False) -> np.ndarray:
    """Out-of-fold predictions, folds grouped by example."""
    out = np.zeros(len(y), dtype=float)
    for train, test in group_folds(groups):
        model = make_model().fit(x[train], y[train])
        out[test] = model.predict_proba(x[test])[:, 1] if proba else model.predict(x[test])
    return out


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values``."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(BOOTSTRAP, len(values)), replace=True).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _defined(a: np.ndarray, b: np.ndarray) -> bool:
    """Is a correlation of ``a`` and ``b`` defined: 3+ values, no NaN, neither side constant?"""
    return len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0  # ptp is NaN, so not > 0, with a NaN


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation, NaN (without a warning) where it is not defined."""
    if not _defined(a, b):
        return float("nan")
    return float(stats.spearmanr(a, b)[0])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if not _defined(a, b):
        return float("nan")
    return float(stats.pearsonr(a, b)[0])


def per_example_spearman(frame: pd.DataFrame, predicted: np.ndarray, target: str) -> np.ndarray:
    values = frame[target].to_numpy(float)
    return np.array([spearman(values[idx], predicted[idx]) for idx in frame.groupby("example_id").indices.values()])
