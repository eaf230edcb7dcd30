"""Planned comparisons: the two-level bootstrap, the mixed logit, Holm, against values by hand; clean eval sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prunelens.distill.stats import (
    holm,
    mixed_logit,
    paired_bootstrap,
    planned_comparisons,
)


def test_bootstrap_of_one_seed_each_is_the_paired_bootstrap_over_problems():
    rng = np.random.default_rng(1)
    a, b = (rng.random(400) < 0.45).astype(float), (rng.random(400) < 0.35).astype(float)
    out = paired_bootstrap(a[None], b[None], resamples=4000)
    d = a - b
    assert out["difference"] == pytest.approx(d.mean())
    # the interval of a mean of n paired differences: about +-1.96 sd(d) / sqrt(n)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert (out["ci_high"] - out["ci_low"]) / 2 == pytest.approx(half, rel=0.1)
    assert out["ci_low"] == pytest.approx(d.mean() - half, abs=0.01)


def test_bootstrap_by_hand_at_the_extremes():
    ones, zeros = np.ones((2, 50)), np.zeros((1, 50))
    assert paired_bootstrap(ones, zeros, resamples=500) == {"difference": 1.0, "ci_low": 1.0, "ci_high": 1.0,
                                                             "p_value": 0.0}
    same = paired_bootstrap(ones, ones, resamples=500)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match="same problems"):
        paired_bootstrap(np.ones((1, 3)), np.ones((1, 4)))


def test_seeds_that_disagree_widen_the_interval():
    """Students of A at 0.3, 0.5 and 0.7 accuracy, of B all at 0.5, on many problems: the problems
    alone would give an interval of about +-0.02; the seeds' spread, sd 0.163 over 3 seeds, adds
    about +-1.96 * 0.163 / sqrt(3) = +-0.18, which a bootstrap over problems only would not see."""
    rng = np.random.default_rng(0)
    n = 5000
    a = np.stack([rng.random(n) < p for p in (0.3, 0.5, 0.7)]).astype(float)
    b = np.stack([rng.random(n) < 0.5 for _ in range(3)]).astype(float)
    out = paired_bootstrap(a, b, 4000)
    seed_sd = a.mean(1).std() / np.sqrt(3)  # the spread of a mean of 3 seeds drawn with replacement
    assert (out["ci_high"] - out["ci_low"]) / 2 == pytest.approx(1.96 * seed_sd, rel=0.2)
    assert out["p_value"] > 0.5  # a mean of 0.5 against 0.5: no difference


def test_mixed_logit_sees_a_real_difference_and_none_where_there_is_none():
    rng = np.random.default_rng(2)
    easy = rng.random(300)  # problem difficulty shared by both conditions
    a = np.stack([(rng.random(300) < 0.3 + 0.4 * easy) for _ in range(3)]).astype(float)
    b = np.stack([(rng.random(300) < 0.1 + 0.4 * easy) for _ in range(3)]).astype(float)
    better = mixed_logit(a, b)
    assert better["log_odds_low"] > 0 and better["log_odds"] > 0.5
    same = mixed_logit(b, np.stack([(rng.random(300) < 0.1 + 0.4 * easy) for _ in range(3)]).astype(float))
    assert same["log_odds_low"] < 0 < same["log_odds_high"]
    # the committed comparisons.csv must rewrite byte for byte on another machine: 4 decimals
    assert all(round(v, 4) == v for v in (*better.values(), *same.values()))


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])


def test_planned_comparisons_correct_only_the_family():
    ids = [f"p{i}" for i in range(100)]
    rng = np.random.default_rng(3)
    answers = {"a@0.8": pd.DataFrame([rng.random(100) < 0.8] * 2, index=[0, 1], columns=ids).astype(float),
               "b@0.8": pd.DataFrame([rng.random(100) < 0.2] * 2, index=[0, 1], columns=ids).astype(float),
               "c@0.8": pd.DataFrame([rng.random(100) < 0.2], index=[0], columns=ids).astype(float)}
    plan = {"eval_set": "in", "resamples": 500, "family": [{"a": "a@0.8", "b": "b@0.8"}, {"a": "c@0.8", "b": "b@0.8"}],
            "secondary": [{"a": "a@0.8", "b": "c@0.8"}, {"a": "a@0.8", "b": "d@0.8"}]}
    table = planned_comparisons(answers, plan).set_index(["a", "b"])
    assert table.loc[("a@0.8", "b@0.8"), "verdict"] == "a > b"
    assert table.loc[("a@0.8", "b@0.8"), "p_holm"] == pytest.approx(min(1, 2 * table.loc[("a@0.8", "b@0.8"), "p_value"]))
    assert np.isnan(table.loc[("a@0.8", "c@0.8"), "p_holm"])
    assert table.loc[("a@0.8", "c@0.8"), "verdict"] == "secondary (uncorrected)"
    assert table.loc[("a@0.8", "d@0.8"), "status"] == "pending"




