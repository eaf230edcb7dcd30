"""The greedy searches (``prunelens.pruning.search``) against the naive algorithm."""

import math

import numpy as np
import pandas as pd
import pytest
from helpers import objective_by_hand

from prunelens.layout import render
from prunelens.ops import n_to_delete, pruned_ids
from prunelens.pruning import Engine, NaiveReference, prune, prune_examples


@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_greedy_equals_naive_on_tiny_model(tiny_model, short_chains, objective):
    layout = render(short_chains[3], tiny_model.tokenizer)
    result = prune(tiny_model, layout, objective=objective)
    order, trajectory = NaiveReference(tiny_model, objective).run(layout)
    assert result.order == order
    assert np.allclose(result.trajectory, trajectory, atol=1e-5)
    p, a = len(layout.prompt_ids), len(layout.post_ids)
    for step in (0, 5, len(order) - 1):  # the trajectory is the objective of the pruned sequences
        kept = [j for j in range(len(layout.reasoning_ids)) if j not in order[:step]]
        ids = pruned_ids(layout.prompt_ids, layout.reasoning_ids, layout.post_ids, kept)
        assert math.isclose(result.trajectory[step], objective_by_hand(tiny_model, ids, p, a, objective),
                            abs_tol=1e-4)


@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_greedy_batch_equals_its_naive_algorithm_and_greedy_at_one_per_step(tiny_model, short_chains, objective):
    layout = render(short_chains[3], tiny_model.tokenizer)
    result = prune(tiny_model, layout, method="greedy-batch", batch_share=0.3, objective=objective)
    order, trajectory = naive_batch(tiny_model, layout, 0.3, objective)
    assert result.order == order
    assert np.allclose(result.trajectory, trajectory, atol=1e-5)
    assert order != prune(tiny_model, layout, objective=objective).order  # several per step: not greedy
    one = prune(tiny_model, layout, method="greedy-batch", batch_share=0.01, objective=objective)  # 1 per step
    exact = prune(tiny_model, layout, objective=objective)
    assert one.order == exact.order and np.allclose(one.trajectory, exact.trajectory, atol=1e-6)


@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_greedy_words_equals_naive_on_tiny_model(tiny_model, short_chains, objective):
    """Whole words deleted, each word's tokens in position order with their partial states scored,
    the last word cut at the keep ratio: as the naive algorithm over the same words."""
    layout = render(short_chains[3], tiny_model.tokenizer)
    assert any(len(w) > 1 for w in layout.words)
    n_delete = n_to_delete(len(layout.reasoning_ids), 0.3)
    result = prune(tiny_model, layout, method="greedy-words", objective=objective, keep_ratio=0.3)
    order, trajectory = NaiveReference(tiny_model, objective).run(layout, n_delete, units=layout.words)
    assert result.order == order and len(order) == n_delete
    assert np.allclose(result.trajectory, trajectory, atol=1e-5)
    starts = {w[0]: w for w in layout.words}
    at = 0
    while at < len(order):  # the order is made of whole words, the last one perhaps cut
        word = starts[order[at]]
        assert order[at: at + len(word)] == word[: len(order) - at]
        at += len(word)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_greedy_equals_naive_on_the_embedded_model(model, short_chains, objective):
    layout = render(short_chains[0], model.tokenizer)
    result = prune(model, layout, objective=objective)
    naive = NaiveReference(model, objective)
    order, trajectory = naive.run(layout)
    assert result.order == order
    assert np.abs(np.array(result.trajectory) - np.array(trajectory)).max() < 1e-4
    assert result.tokens_processed * 4 < naive.tokens  # each candidate computes only its own segment
    words = prune(model, layout, method="greedy-words", objective=objective)
    order, trajectory = naive.run(layout, units=layout.words)
    assert words.order == order
    assert np.abs(np.array(words.trajectory) - np.array(trajectory)).max() < 1e-4


def test_keep_ratio_stops_early_and_first_scores_are_single_deletions(tiny_model, short_chains):
    layout = render(short_chains[5], tiny_model.tokenizer)
    n = len(layout.reasoning_ids)
    full = prune(tiny_model, layout)
    half = prune(tiny_model, layout, keep_ratio=0.5)
    assert half.order == full.order[: n_to_delete(n, 0.5)]
    assert sum(s is None for s in half.deleted_step) == n - n_to_delete(n, 0.5)
    assert len(half.trajectory) == len(half.order) + 1
    p, a = len(layout.prompt_ids), len(layout.post_ids)
    for j in (0, n // 2, n - 1):  # deleting token j alone: the first score of j is that sequence's objective
        ids = layout.prompt_ids + layout.reasoning_ids[:j] + layout.reasoning_ids[j + 1:] + layout.post_ids
        assert math.isclose(full.first_scores[j], objective_by_hand(tiny_model, ids, p, a, "reason-answer"),
                            abs_tol=1e-4)


def test_greedy_fast_is_a_full_ranking_that_starts_like_greedy(tiny_model, short_chains):
    layout = render(short_chains[8], tiny_model.tokenizer)
    exact = prune(tiny_model, layout)
    fast = prune(tiny_model, layout, method="greedy-fast")
    assert sorted(fast.order) == list(range(len(layout.reasoning_ids)))
    assert fast.order[0] == exact.order[0]  # step 1 scores every candidate
    assert fast.tokens_processed < exact.tokens_processed
    assert np.allclose(fast.first_scores, exact.first_scores, atol=1e-5)


@pytest.mark.parametrize("method,keep", [("greedy", 0.0), ("greedy-fast", 0.3), ("greedy-words", 0.3),
                                         ("greedy-batch", 0.3)])
@pytest.mark.slow  # end to end: the fast lane has its parts
def test_searches_side_by_side_give_the_tables_of_one_at_a_time(tiny_model, short_chains, tmp_path, method, keep):
    """--lockstep 3 on 5 chains (examples end at different steps and are replaced): the same orders,
    trajectories and per-example work as searching them one by one."""
    examples = short_chains[:5]
    runs = {k: tmp_path / f"x{k}" for k in (1, 3)}
    for k, out in runs.items():
        summary = prune_examples(tiny_model, examples, out, method=method, keep_ratio=keep, lockstep=k,
                                 show_progress=False)
        assert summary["done"] == 5
    one, three = (pd.read_parquet(runs[k] / "examples.parquet").set_index("example_id") for k in (1, 3))
    assert list(one.index) == list(three.index)
    assert [list(o) for o in one.order] == [list(o) for o in three.order]
    for a, b in zip(one.objective_trajectory, three.objective_trajectory):
        assert np.allclose(a, b, atol=1e-5)
    assert list(one.tokens_needed) == list(three.tokens_needed)  # each search's own share of the passes
    assert (three.tokens_processed >= three.tokens_needed).all()
    pd.testing.assert_frame_equal(pd.read_parquet(runs[1] / "tokens.parquet"), pd.read_parquet(runs[3] / "tokens.parquet"),
                                  check_exact=False, atol=1e-5)


def test_a_search_counts_its_own_work_as_the_engine_does(tiny_model, short_chains):
    from prunelens.pruning.search import drive, greedy_steps

    layout = render(short_chains[4], tiny_model.tokenizer)
    engine = Engine(tiny_model)
    ranking = drive(engine, greedy_steps(engine, layout, len(layout.reasoning_ids), None, lambda k: None))
    assert ranking.work == (engine.tokens, engine.useful) and engine.useful > 0


def naive_batch(model, layout, share: float, objective: str) -> tuple[list[int], list[float]]:
    """greedy-batch the slow way: every candidate (the first of each run of equal tokens) scored by
    its own full pass; greedy's pick, then the best others not next to a chosen one, up to
    ``share`` of the remaining tokens; every state in between scored by a full pass."""
    naive = NaiveReference(model, objective)
    p, a, n = len(layout.prompt_ids), len(layout.post_ids), len(layout.reasoning_ids)

    def objective_of(kept):
        return naive.objectives([pruned_ids(layout.prompt_ids, layout.reasoning_ids, layout.post_ids, kept)], p, a)[0]

    kept, order = list(range(n)), []
    trajectory = [objective_of(kept)]
    while kept:
        scores = naive.candidate_scores(layout, kept)
        tokens = [layout.reasoning_ids[k] for k in kept]
        candidates = [j for j in range(len(kept)) if j == 0 or tokens[j] != tokens[j - 1]]
        best = max(scores[j] for j in candidates)
        chosen = [next(j for j in candidates if scores[j] >= best - 1e-6)]
        for j in sorted(candidates, key=lambda j: (-scores[j], j)):
            if len(chosen) < max(1, int(share * len(kept))) and all(abs(j - c) > 1 for c in chosen):
                chosen.append(j)
        for c in chosen:
            order.append(kept[c])
            trajectory.append(objective_of([k for k in kept if k not in order]))
        kept = [k for k in kept if k not in order]
    return order, trajectory
