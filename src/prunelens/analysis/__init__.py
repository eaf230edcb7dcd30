"""The study: does attention predict pruning order, and which categories survive?

One module per job: ``tables`` (each table the study reads), ``study`` (every table of a run,
``analyze``, and its ``headline`` numbers), ``compare`` (two runs side by side: order agreement,
the normalised objective, category survival in two runs of the same problems). The modelling they share (estimators, grouped cross-validation,
correlations) is ``prunelens.modelling``.
"""

from __future__ import annotations

from .compare import normalised_objective, objective_at, order_agreement, survival_difference
from .study import analyze, headline
from .tables import (PUBLISHED_PEARSON, broken_numbers, category_classifier, category_rank, category_survival,
                     drop_regression, dynamic_regression, permutation_importance, rank_regression, survival_classifier)

__all__ = ["PUBLISHED_PEARSON", "analyze", "broken_numbers", "category_classifier", "category_rank",
           "category_survival", "drop_regression", "dynamic_regression", "headline", "normalised_objective",
           "objective_at", "order_agreement", "permutation_importance", "rank_regression", "survival_classifier",
           "survival_difference"]
