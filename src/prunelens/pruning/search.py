"""Greedy search: which candidates to score at each step, and which to delete.

- ``greedy`` (exact): every remaining token is a candidate at every step; the one whose deletion
  keeps the objective highest goes (ties: earliest position). Deleting either of two equal
  adjacent tokens gives the same sequence, so only the first of such a run is scored.
- ``greedy-fast`` (lazy re-scoring): each candidate remembers the objective drop measured when it
  was last scored. A step re-scores only the ``fast_share`` of candidates with the smallest
  remembered drop (at least 4), plus every candidate within ``fast_neighbours`` tokens of, or
  equal to, a token deleted since it was last scored (a deletion changes those drops most), and
  deletes the best of those; every ``fast_refresh`` steps all candidates are re-scored. It is exact
  at step 1 and whenever the true best is among those re-scored.

Both record the exact objective of every state they visit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..layout import Layout
from ..ops import pick, pruned_ids
from .config import PruneConfig
from .registry import Ranking, register

MIN_SHORTLIST = 4


def greedy(engine, layout: Layout, n_delete: int, config: PruneConfig | None,
           progress: Callable[[int], None]) -> Ranking:
    """Greedy deletion of ``n_delete`` tokens, one per step: exact when ``config`` is None, else lazy."""
    prompt, reasoning, post = layout.prompt_ids, layout.reasoning_ids, layout.post_ids
    p = len(prompt)
    kept = list(range(len(reasoning)))
    order: list[int] = []
    first_scores: list[float] = []
    state = engine.state(layout.ids, p, len(post))
    trajectory = [engine.objective_of(state)]
    drop: dict[int, float] = {}  # original position -> remembered objective drop when deleted
    stale: set[int] = set()  # original positions near a deletion since they were last scored
    step = 0
    while len(order) < n_delete:
        current = trajectory[-1]
        tokens = [reasoning[k] for k in kept]
        if config is None or step % config.fast_refresh == 0:
            candidates = list(range(len(kept)))
        else:
            share = max(MIN_SHORTLIST, math.ceil(config.fast_share * len(kept)))
            promising = sorted(range(len(kept)), key=lambda j: drop[kept[j]])[:share]
            candidates = sorted(set(promising) | {j for j, q in enumerate(kept) if q in stale})
        fresh = [j for j in candidates if j == 0 or tokens[j] != tokens[j - 1]]
        computed = dict(zip(fresh, engine.score(state, [[j] for j in fresh])))
        scores = [math.nan] * len(kept)
        chosen = set(candidates)
        for j in candidates:
            scores[j] = computed[j] if j in computed else scores[j - 1] if j - 1 in chosen \
                else current - drop[kept[j - 1]]
            drop[kept[j]] = current - scores[j]
            stale.discard(kept[j])
        if not first_scores:
            first_scores = list(scores)
        j = pick([s if not math.isnan(s) else -math.inf for s in scores])
        trajectory.append(scores[j])
        order.append(kept.pop(j))
        if config is not None:
            gone = reasoning[order[-1]]
            stale.update(kept[max(0, j - config.fast_neighbours): j + config.fast_neighbours])
            stale.update(q for q in kept if reasoning[q] == gone)
        step += 1
        if len(order) < n_delete:
            state = engine.advance(state, pruned_ids(prompt, reasoning, post, kept), p + j, deleted=j)
        progress(1)
    return Ranking(order, trajectory, first_scores or None)


def greedy_blocks(engine, layout: Layout, n_delete: int, config: PruneConfig,
                  progress: Callable[[int], None]) -> Ranking:
    """Block greedy: score every candidate once per round, then delete a block of the best-scored."""
    prompt, reasoning, post = layout.prompt_ids, layout.reasoning_ids, layout.post_ids
    p = len(prompt)
    kept = list(range(len(reasoning)))
    order: list[int] = []
    first_scores: list[float] = []
    state = engine.state(layout.ids, p, len(post))
    trajectory = [engine.objective_of(state)]
    while len(order) < n_delete:
        tokens = [reasoning[k] for k in kept]
        fresh = [j for j in range(len(kept)) if j == 0 or tokens[j] != tokens[j - 1]]
        computed = dict(zip(fresh, engine.score(state, [[j] for j in fresh])))
        scores = []
        for j in range(len(kept)):
            scores.append(computed[j] if j in computed else scores[j - 1])
        if not first_scores:
            first_scores = list(scores)
        size = min(n_delete - len(order), max(1, math.ceil(config.fast_share * len(kept))))
        block = [pick(scores)]
        for j in sorted(range(len(kept)), key=lambda j: (-scores[j], j)):
            if len(block) == size:
                break
            if all(abs(j - b) > config.fast_neighbours and tokens[j] != tokens[b] for b in block):
                block.append(j)
        trajectory.append(scores[block[0]])
        trajectory += engine.score(state, [sorted(block[:i]) for i in range(2, len(block) + 1)])
        order += [kept[j] for j in block]
        kept = [k for j, k in enumerate(kept) if j not in set(block)]
        if len(order) < n_delete:
            state = engine.advance(state, pruned_ids(prompt, reasoning, post, kept), p + min(block), deleted=min(block))
        progress(len(block))
    return Ranking(order, trajectory, first_scores or None)


class Greedy:
    name = "greedy"
    help = "exact greedy deletion: every remaining token scored at every step"

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        return greedy(engine, layout, n_delete, None, progress)


class GreedyFast:
    name = "greedy-fast"
    help = "lazy greedy: re-scores a shortlist per step, everything every fast_refresh steps"

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        return greedy(engine, layout, n_delete, config, progress)


register(Greedy())
register(GreedyFast())
