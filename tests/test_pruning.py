import math

import numpy as np
import pandas as pd
import pytest
import torch

from prunelens.data import Example
from prunelens.layout import render
from prunelens.pruning import (METHODS, NaiveReference, n_to_delete, pick, prune, prune_examples,
                               token_logprobs)
from prunelens.store import RunError


def test_pick_breaks_ties_by_earliest_position():
    assert pick([0.1, 0.5, 0.5, 0.2]) == 1
    assert pick([0.1, 0.5, 0.5 + 1e-9, 0.2]) == 1  # within the tie tolerance
    assert pick([0.1, 0.5, 0.6, 0.2]) == 2


def test_keep_ratio_counts():
    assert n_to_delete(10, 0.0) == 10 and n_to_delete(10, 0.5) == 5 and n_to_delete(10, 1.0) == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        n_to_delete(10, 1.5)


def objective_by_hand(model, ids, p, n_post, objective):
    """The objective of ``ids`` from one plain forward pass, written out independently."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = model.hf(x).logits[0].log_softmax(-1)
    lp = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
    start = p if objective == "reason-answer" else len(ids) - n_post
    return float(np.mean(lp[start - 1:]))


@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_greedy_equals_naive_on_tiny_model(tiny_model, short_chains, objective):
    layout = render(short_chains[3], tiny_model.tokenizer)
    result = prune(tiny_model, layout, "greedy", objective)
    order, trajectory = NaiveReference(tiny_model, objective).run(layout)
    assert result.order == order
    assert np.allclose(result.trajectory, trajectory, atol=1e-4)
    # The trajectory is the objective of the pruned sequences themselves.
    p, a = len(layout.prompt_ids), len(layout.post_ids)
    for step in (0, 5, len(order) - 1):
        kept = [j for j in range(len(layout.reasoning_ids)) if j not in order[:step]]
        ids = layout.prompt_ids + [layout.reasoning_ids[j] for j in kept] + layout.post_ids
        assert math.isclose(result.trajectory[step], objective_by_hand(tiny_model, ids, p, a, objective),
                            abs_tol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_greedy_equals_naive_on_the_embedded_model(model, short_chains, objective):
    layout = render(short_chains[0], model.tokenizer)
    result = prune(model, layout, "greedy", objective)
    naive = NaiveReference(model, objective)
    order, trajectory = naive.run(layout)
    assert result.order == order
    assert np.abs(np.array(result.trajectory) - np.array(trajectory)).max() < 1e-4
    assert result.tokens_processed * 3 < naive.tokens  # the cache does the work it promises


def test_keep_ratio_stops_early_and_first_scores_are_single_deletions(tiny_model, short_chains):
    layout = render(short_chains[5], tiny_model.tokenizer)
    n = len(layout.reasoning_ids)
    full = prune(tiny_model, layout, "greedy")
    half = prune(tiny_model, layout, "greedy", keep_ratio=0.5)
    assert half.order == full.order[: n_to_delete(n, 0.5)]
    assert sum(s is None for s in half.deleted_step) == n - n_to_delete(n, 0.5)
    assert len(half.trajectory) == len(half.order) + 1
    # Deleting token j alone: the first score of j is the objective of that sequence.
    p, a = len(layout.prompt_ids), len(layout.post_ids)
    for j in (0, n // 2, n - 1):
        ids = layout.prompt_ids + layout.reasoning_ids[:j] + layout.reasoning_ids[j + 1:] + layout.post_ids
        assert math.isclose(full.first_scores[j], objective_by_hand(tiny_model, ids, p, a, "reason-answer"),
                            abs_tol=1e-4)


def test_greedy_fast_is_a_full_ranking_that_starts_like_greedy(tiny_model, short_chains):
    layout = render(short_chains[8], tiny_model.tokenizer)
    exact = prune(tiny_model, layout, "greedy")
    fast = prune(tiny_model, layout, "greedy-fast")
    assert sorted(fast.order) == list(range(len(layout.reasoning_ids)))
    assert fast.order[0] == exact.order[0]  # step 1 scores every candidate
    assert fast.tokens_processed < exact.tokens_processed
    assert np.allclose(fast.first_scores, exact.first_scores, atol=1e-5)


def test_baselines(tiny_model, short_chains):
    layout = render(short_chains[4], tiny_model.tokenizer)
    n = len(layout.reasoning_ids)
    truncate = prune(tiny_model, layout, "truncate")
    assert truncate.order == list(range(n - 1, -1, -1))
    r1 = prune(tiny_model, layout, "random", seed=1, example_id="x")
    assert r1.order == prune(tiny_model, layout, "random", seed=1, example_id="x").order
    assert r1.order != prune(tiny_model, layout, "random", seed=2, example_id="x").order
    # surprisal: lowest surprisal first, from one independent forward pass
    ids = layout.ids
    with torch.no_grad():
        logits = tiny_model.hf(torch.tensor([ids])).logits[0]
    p = len(layout.prompt_ids)
    lp = token_logprobs(logits[p - 1: p + n - 1], torch.tensor(layout.reasoning_ids))
    assert prune(tiny_model, layout, "surprisal").order == sorted(range(n), key=lambda j: -float(lp[j]))
    for method in METHODS:
        result = prune(tiny_model, layout, method, keep_ratio=0.5, example_id="x")
        assert len(result.order) == n_to_delete(n, 0.5) and len(result.trajectory) == len(result.order) + 1
        assert len(set(result.order)) == len(result.order)
    # every method's trajectory is exact: the truncated state is scored like greedy's own
    assert math.isclose(truncate.trajectory[0], prune(tiny_model, layout, "greedy").trajectory[0], abs_tol=1e-6)


def test_unknown_method_and_objective(tiny_model, short_chains):
    layout = render(short_chains[0], tiny_model.tokenizer)
    with pytest.raises(ValueError, match="unknown method"):
        prune(tiny_model, layout, "magic")
    with pytest.raises(ValueError, match="unknown objective"):
        prune(tiny_model, layout, "greedy", "everything")


def test_prune_examples_writes_tables_and_resumes(tiny_model, short_chains, tmp_path):
    examples = short_chains[:4]
    out = tmp_path / "run"
    first = prune_examples(tiny_model, examples[:2], out, "greedy", show_progress=False)
    assert first == {"done": 2, "resumed": 0, "skipped": []}
    again = prune_examples(tiny_model, examples, out, "greedy", show_progress=False)
    assert again == {"done": 2, "resumed": 2, "skipped": []}
    ex = pd.read_parquet(out / "examples.parquet")
    tok = pd.read_parquet(out / "tokens.parquet")
    assert list(ex.example_id) == sorted((e.id for e in examples), key=lambda s: int(s.split("-")[1]))
    for column in ["example_id", "question", "reasoning", "answer", "model", "method", "objective",
                   "prompt_ids", "reasoning_ids", "post_ids", "order", "objective_trajectory", "seconds"]:
        assert column in ex
    for column in ["example_id", "position", "token_id", "token_text", "char_start", "char_end",
                   "deleted_step", "rank_norm"]:
        assert column in tok
    row = ex.iloc[0]
    rows = tok[tok.example_id == row.example_id]
    assert list(rows.token_id) == list(row.reasoning_ids)
    assert "".join(rows.token_text) == row.reasoning
    assert sorted(rows.deleted_step) == list(range(1, len(rows) + 1))
    assert np.allclose(rows.rank_norm, rows.deleted_step / len(rows))
    assert [rows.position.iloc[i] for i in np.argsort(rows.deleted_step.to_numpy())] == list(row.order)
    with pytest.raises(RunError, match="method='greedy' \\(now 'random'\\)"):
        prune_examples(tiny_model, examples, out, "random", show_progress=False)


def test_shards_share_a_run_and_merge(tiny_model, short_chains, tmp_path):
    examples = short_chains[:5]
    out = tmp_path / "sharded"
    for shard in ("0/2", "1/2"):
        prune_examples(tiny_model, examples, out, "truncate", shard=shard, show_progress=False)
    ex = pd.read_parquet(out / "examples.parquet")
    assert sorted(ex.example_id) == sorted(e.id for e in examples)


def test_bad_examples_stop_or_are_skipped(tiny_model, short_chains, tmp_path):
    from prunelens.layout import LayoutError

    bad = Example("bad-1", "q", "word " * 1200, "1")  # longer than the tiny model's 1024 positions
    examples = [short_chains[0], bad, short_chains[1]]
    with pytest.raises(LayoutError, match="bad-1: .* exceed the model's context of 1024"):
        prune_examples(tiny_model, examples, tmp_path / "a", "truncate", show_progress=False)
    assert pd.read_parquet(tmp_path / "a" / "parts" / "prune" / f"{short_chains[0].id}.examples.parquet").shape[0] == 1
    summary = prune_examples(tiny_model, examples, tmp_path / "b", "truncate", skip_bad=True, show_progress=False)
    assert summary["done"] == 2 and len(summary["skipped"]) == 1
