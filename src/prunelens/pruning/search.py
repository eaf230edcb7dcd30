"""Greedy search: which candidates to score at each step, and which to delete.

- ``greedy`` (exact): every remaining token is a candidate at every step; the one whose deletion
  keeps the objective highest goes (ties: earliest position). Deleting either of two equal
  adjacent tokens gives the same sequence, so only the first of such a run is scored.
- ``greedy-fast`` (lazy greedy with verification, as CELF does for submodular selection): each
  candidate remembers the objective drop measured when it was last scored. A step first re-scores
  every candidate within ``fast_neighbours`` tokens of, or equal to, a token deleted since it was
  last scored (a deletion changes those drops most), then the candidates with the smallest
  remembered drops, ``fast_share`` of them at a time (at least 8), until the best fresh score beats
  every remaining remembered one; it deletes the best fresh candidate. Every ``fast_refresh``
  steps all candidates are re-scored. It is exact at step 1, and at every step where no remembered
  drop has shrunk since it was measured.
- ``greedy-batch``: every remaining token is scored exactly at every step, as in ``greedy``, but
  a step deletes up to ``batch_share`` of the remaining tokens at once (at least one): greedy's
  own choice first, then the next best by that step's scores, none next to another chosen in the
  step (deleting neighbours together makes new neighbours, which the step never scored). The
  states between a step's deletions are scored as candidates of the step's state. With one token
  per step it is ``greedy``; deleting several per step trades exactness for fewer steps.
- ``greedy-words``: exact greedy over whole words (``Layout.words``) instead of tokens: every
  remaining word is a candidate at every step, and the best goes (ties: earliest). Its tokens enter
  the order in position order, each partial state scored exactly (the chain at a keep ratio keeps a
  word it falls inside whole: ``schema.present_at``); deleting a number whole never leaves a
  different number behind, as deleting some of its digit tokens does.

All record the exact objective of every state they visit. Each is written as a coroutine
(``greedy_steps``) that yields its scoring requests, so ``lockstep`` can run the searches of
several examples side by side, one engine pass scoring a request of each (``--lockstep``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from ..errors import SettingsError
from ..layout import Layout
from ..ops import TIE_TOL, pick, pruned_ids
from .registry import Ranking, register, setting

MIN_SHORTLIST = 8


Steps = Generator[tuple, list[float], Ranking]  # yields (state, deletions), is sent their scores


def _batch(fresh: dict[int, float], first: int, size: int) -> list[int]:
    """``first``, then the best others of ``fresh`` (ties: earliest) not next to one already chosen,
    up to ``size`` in all."""
    chosen = [first]
    for j in sorted(fresh, key=lambda j: (-fresh[j], j)):
        if len(chosen) == size:
            break
        if all(abs(j - c) > 1 for c in chosen):
            chosen.append(j)
    return chosen


def greedy_steps(engine, layout: Layout, n_delete: int, lazy: GreedyFast | None,
                 progress: Callable[[int], None], batch_share: float = 0.0) -> Steps:
    """Greedy deletion of ``n_delete`` tokens: exact when ``lazy`` is None, else lazy with its
    settings; with ``batch_share``, exact scoring and up to that share of the remaining tokens
    deleted per step."""
    prompt, reasoning, post = layout.prompt_ids, layout.reasoning_ids, layout.post_ids
    p = len(prompt)
    kept = list(range(len(reasoning)))
    order: list[int] = []
    first_scores: list[float] = []
    state = engine.state(layout.ids, p, len(post))
    trajectory = [engine.objective_of(state)]
    drop: dict[int, float] = {}  # original position -> objective drop when it was last scored
    stale: set[int] = set()  # original positions near a deletion since they were last scored
    step = 0
    while len(order) < n_delete:
        current = trajectory[-1]
        tokens = [reasoning[k] for k in kept]
        # Deleting any token of a run of equal tokens gives the same sequence: score the run's first.
        runs = [j for j in range(len(kept)) if j == 0 or tokens[j] != tokens[j - 1]]
        fresh: dict[int, float] = {}

        def rescore(batch: list[int]) -> Steps:
            fresh.update(zip(batch, (yield state, [[j] for j in batch])))

        if lazy is None or step % lazy.refresh == 0:
            yield from rescore(runs)
        else:
            touched = [j for j in runs if kept[j] in stale or kept[j] not in drop]
            untouched = [j for j in runs if not (kept[j] in stale or kept[j] not in drop)]
            waiting = sorted(untouched, key=lambda j: (drop[kept[j]], j))
            size = max(MIN_SHORTLIST, math.ceil(lazy.share * len(runs)))
            yield from rescore(sorted(touched + waiting[:size]))  # one pass for both: fewer, fuller passes
            waiting = waiting[size:]
            while waiting and max(fresh.values()) <= current - drop[kept[waiting[0]]] + TIE_TOL:
                yield from rescore(waiting[:size])
                waiting = waiting[size:]
        for j, score in fresh.items():
            drop[kept[j]] = current - score
            stale.discard(kept[j])
        if not first_scores:
            first_scores = [fresh[max(r for r in runs if r <= j)] for j in range(len(kept))]
        scored = sorted(fresh)
        j = scored[pick([fresh[r] for r in scored])]
        size = min(n_delete - len(order), max(1, int(batch_share * len(kept))))
        chosen = _batch(fresh, j, size) if size > 1 else [j]
        trajectory.append(fresh[j])
        if len(chosen) > 1:  # the states after the step's 2nd, 3rd, ... deletion
            trajectory += yield state, [sorted(chosen[:i]) for i in range(2, len(chosen) + 1)]
        gone = [kept[c] for c in chosen]
        order += gone
        kept = [q for i, q in enumerate(kept) if i not in chosen]
        if lazy is not None:
            stale.update(kept[max(0, j - lazy.neighbours): j + lazy.neighbours])
            stale.update(q for q in kept if reasoning[q] == reasoning[order[-1]])
        step += 1
        if len(order) < n_delete:
            first = min(chosen)
            state = engine.advance(state, pruned_ids(prompt, reasoning, post, kept), p + first, deleted=first)
        progress(len(gone))
    return Ranking(order, trajectory, first_scores or None, (state.tokens, state.useful))


def word_steps(engine, layout: Layout, n_delete: int, progress: Callable[[int], None]) -> Steps:
    """Greedy deletion of whole words until ``n_delete`` tokens are gone (the last word cut there)."""
    prompt, reasoning, post = layout.prompt_ids, layout.reasoning_ids, layout.post_ids
    p = len(prompt)
    kept = list(range(len(reasoning)))
    units = layout.words
    words = list(units)  # shrinks as words go
    order: list[int] = []
    state = engine.state(layout.ids, p, len(post))
    trajectory = [engine.objective_of(state)]
    while len(order) < n_delete:
        index = {q: j for j, q in enumerate(kept)}  # original position -> reasoning index in the state
        scores = yield state, [[index[q] for q in word] for word in words]
        j = pick(scores)
        word = words.pop(j)
        gone = word[: n_delete - len(order)]
        partial = [[index[q] for q in gone[:i]] for i in range(1, len(gone) if gone == word else len(gone) + 1)]
        if partial:  # the states between the word's tokens, scored as candidates of this state
            trajectory += yield state, partial
        if gone == word:
            trajectory.append(scores[j])
        order += gone
        kept = [q for q in kept if q not in gone]  # a word is a few tokens: a list is quick
        if len(order) < n_delete:
            state = engine.advance(state, pruned_ids(prompt, reasoning, post, kept), p + index[gone[0]],
                                   deleted=index[gone[0]])
        progress(len(gone))
    return Ranking(order, trajectory, None, (state.tokens, state.useful), units)


def drive(engine, steps: Steps) -> Ranking:
    """Run one search, scoring each of its requests as it comes."""
    try:
        request = next(steps)
        while True:
            request = steps.send(engine.score(*request))
    except StopIteration as done:
        return done.value


def lockstep(engine, searches: Iterable[tuple[Hashable, Steps]], width: int) -> Iterator[tuple[Hashable, Ranking]]:
    """Run up to ``width`` searches side by side, one ``score_many`` pass per round for the pending
    request of each; yields ``(key, ranking)`` as each ends and starts the next in its place."""
    searches = iter(searches)
    active: dict[Hashable, tuple[Steps, tuple]] = {}
    while True:
        while len(active) < width and (job := next(searches, None)) is not None:
            key, steps = job
            try:
                active[key] = (steps, next(steps))
            except StopIteration as done:  # nothing to delete
                yield key, done.value
        if not active:
            return
        keys = list(active)
        for key, scores in zip(keys, engine.score_many([active[key][1] for key in keys])):
            steps = active[key][0]
            try:
                active[key] = (steps, steps.send(scores))
            except StopIteration as done:
                del active[key]
                yield key, done.value


@dataclass(frozen=True)
class Greedy:
    """Exact greedy deletion: every remaining token scored at every step."""

    name: ClassVar[str] = "greedy"
    help: ClassVar[str] = "exact greedy deletion: every remaining token scored at every step"

    def steps(self, engine, layout, config, n_delete, progress) -> Steps:
        return greedy_steps(engine, layout, n_delete, None, progress)

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        return drive(engine, self.steps(engine, layout, config, n_delete, progress))


@dataclass(frozen=True)
class GreedyWords(Greedy):
    """Exact greedy deletion of whole words (``Layout.words``)."""

    name: ClassVar[str] = "greedy-words"
    help: ClassVar[str] = "exact greedy deletion of whole words: every remaining word scored at every step"

    def steps(self, engine, layout, config, n_delete, progress) -> Steps:
        return word_steps(engine, layout, n_delete, progress)


@dataclass(frozen=True)
class GreedyFast(Greedy):
    """Lazy greedy with verification (see the module docstring)."""

    name: ClassVar[str] = "greedy-fast"
    help: ClassVar[str] = "lazy greedy: re-scores a shortlist per step, everything every fast_refresh steps"
    share: float = setting(0.05, "greedy-fast: share of candidates re-scored per batch (at least 8)", key="fast_share")
    refresh: int = setting(20, "greedy-fast: re-score every candidate every this many steps", key="fast_refresh")
    neighbours: int = setting(4, "greedy-fast: also re-score tokens this close to a deletion", key="fast_neighbours")

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise SettingsError(f"fast_share {self.share} is not in (0, 1]")
        if self.refresh < 1 or self.neighbours < 0:
            raise SettingsError("fast_refresh must be at least 1 and fast_neighbours at least 0")

    def steps(self, engine, layout, config, n_delete, progress) -> Steps:
        return greedy_steps(engine, layout, n_delete, self, progress)


@dataclass(frozen=True)
class GreedyBatch(Greedy):
    """Exact scoring, several deletions per step (see the module docstring)."""

    name: ClassVar[str] = "greedy-batch"
    help: ClassVar[str] = "greedy with every token scored per step, up to batch_share of them deleted per step"
    share: float = setting(0.1, "greedy-batch: delete up to this share of the remaining tokens per step",
                           key="batch_share")

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise SettingsError(f"batch_share {self.share} is not in (0, 1)")

    def steps(self, engine, layout, config, n_delete, progress) -> Steps:
        return greedy_steps(engine, layout, n_delete, None, progress, self.share)


for _method in (Greedy, GreedyWords, GreedyFast, GreedyBatch):
    register(_method)
