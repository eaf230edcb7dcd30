"""Grouped cross-validation (``prunelens.modelling``): no example is in both train and test."""

import numpy as np


def test_cross_predict_cannot_learn_an_example_it_holds_out():
    """A feature that only memorises which example a row belongs to predicts that example's target in
    sample, but says nothing about held-out examples: out-of-fold predictions must not follow it."""
    from sklearn.linear_model import LinearRegression

    from prunelens.modelling import cross_predict

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 10)  # 30 examples of 10 tokens
    target = rng.normal(size=30)[groups]  # each example's own value
    memorise = np.eye(30)[groups]  # one-hot of the example: perfect in sample
    assert np.corrcoef(LinearRegression().fit(memorise, target).predict(memorise), target)[0, 1] > 0.99
    held_out = cross_predict(LinearRegression, memorise, target, groups)
    assert abs(np.corrcoef(held_out, target)[0, 1]) < 0.3
