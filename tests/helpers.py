"""Independent references the tests share: objectives by plain forward passes, deletion sets."""

import numpy as np
import torch


def deletion_sets(n: int, seed: int = 0) -> list[list[int]]:
    """Single deletions everywhere, and multi-token states: adjacent, far apart, first, last, all but one."""
    rng = np.random.default_rng(seed)
    sets = [[j] for j in range(n)]
    sets += [[0, 1], [n - 2, n - 1], [0, n - 1], list(range(n - 1)), list(range(1, n))]
    sets += [sorted(rng.choice(n, size=int(rng.integers(2, n)), replace=False).tolist()) for _ in range(8)]
    return sets


def objective_by_hand(model, ids, p, n_post, objective):
    """The objective of ``ids`` from one plain forward pass, written out independently."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = model.hf(x).logits[0].log_softmax(-1)
    lp = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
    start = p if objective == "reason-answer" else len(ids) - n_post
    return float(np.mean(lp[start - 1:]))
