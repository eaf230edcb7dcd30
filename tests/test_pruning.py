import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from prunelens.data import Example
from prunelens.layout import render
from prunelens.ops import n_to_delete, pick, pruned_ids, token_logprobs, trajectory_grid
from prunelens.pruning import METHODS, Engine, NaiveReference, PruneConfig, prune, prune_examples, writes_text
from prunelens.pruning.search import GreedyFast
from prunelens.store import RunError, StageStore


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


def deletion_sets(n: int, seed: int = 0) -> list[list[int]]:
    """Single deletions everywhere, and multi-token states: adjacent, far apart, first, last, all but one."""
    rng = np.random.default_rng(seed)
    sets = [[j] for j in range(n)]
    sets += [[0, 1], [n - 2, n - 1], [0, n - 1], list(range(n - 1)), list(range(1, n))]
    sets += [sorted(rng.choice(n, size=int(rng.integers(2, n)), replace=False).tolist()) for _ in range(8)]
    return sets


@pytest.fixture(scope="module")
def tiny_eager(tiny_model):
    """The tiny model scoring with eager attention (the default is sdpa)."""
    from prunelens.models import load_model

    return load_model(str(tiny_model.path), device="cpu", attention="eager")


@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
@pytest.mark.parametrize("limits", [{}, {"max_rows": 1}, {"memory_gib": 1e-4}, "eager"])
def test_packed_scores_equal_full_forward_passes(tiny_model, tiny_eager, short_chains, objective, limits):
    """Every candidate state scored through packed rows (4D mask, explicit positions, shared prefix cache)
    equals the objective of that sequence from its own plain forward pass, with either attention."""
    layout = render(short_chains[6], tiny_model.tokenizer)
    p, n, a = len(layout.prompt_ids), len(layout.reasoning_ids), len(layout.post_ids)
    scorer = tiny_eager if limits == "eager" else tiny_model
    engine = Engine(scorer, objective, **({} if limits == "eager" else limits))
    state = engine.state(layout.ids, p, a)
    sets = deletion_sets(n)
    scores = engine.score(state, sets)
    naive = NaiveReference(tiny_model, objective)
    expected = [naive.objectives([pruned_ids(layout.prompt_ids, layout.reasoning_ids, layout.post_ids,
                                             [k for k in range(n) if k not in gone])], p, a)[0] for gone in sets]
    assert np.abs(np.array(scores) - expected).max() < 1e-5
    assert math.isclose(engine.objective_of(state), objective_by_hand(tiny_model, layout.ids, p, a, objective),
                        abs_tol=1e-5)
    if not limits or limits == "eager":  # several segments share a row, and padding stays small
        assert engine.tokens <= 1.2 * engine.useful


def test_advance_equals_a_fresh_state(tiny_model, short_chains):
    layout = render(short_chains[7], tiny_model.tokenizer)
    p, n, a = len(layout.prompt_ids), len(layout.reasoning_ids), len(layout.post_ids)
    engine = Engine(tiny_model)
    state = engine.state(layout.ids, p, a)
    kept = [k for k in range(n) if k != n // 2]
    ids = pruned_ids(layout.prompt_ids, layout.reasoning_ids, layout.post_ids, kept)
    advanced, fresh = engine.advance(state, ids, p + n // 2), engine.state(ids, p, a)
    assert torch.allclose(advanced.tlp, fresh.tlp, atol=1e-5)
    assert torch.allclose(advanced.hidden, fresh.hidden, atol=1e-4)
    assert engine.score(advanced, [[0], [3, 4]]) == pytest.approx(engine.score(fresh, [[0], [3, 4]]), abs=1e-5)


@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_scoring_several_states_at_once_equals_one_at_a_time(tiny_model, short_chains, objective):
    """score_many packs candidates of different sequences (other lengths, advanced states with memos)
    into shared passes; every score must be the one ``score`` gives for its own state alone."""
    def states(engine):
        out = []
        for example in (short_chains[0], short_chains[5], short_chains[9]):
            layout = render(example, tiny_model.tokenizer)
            p, n, a = len(layout.prompt_ids), len(layout.reasoning_ids), len(layout.post_ids)
            state = engine.state(layout.ids, p, a)
            engine.score(state, [[j] for j in range(n)])  # fills the memo
            kept = [k for k in range(n) if k != n // 2]
            out.append(engine.advance(state, pruned_ids(layout.prompt_ids, layout.reasoning_ids, layout.post_ids,
                                                        kept), p + n // 2, deleted=n // 2))
        return out

    alone, together = Engine(tiny_model, objective), Engine(tiny_model, objective, max_rows=3)  # rows of 2+ states
    asks = [[[j] for j in range(s.n)] + [[0, s.n - 1]] for s in states(alone)]
    expected = [alone.score(s, ask) for s, ask in zip(states(alone), asks)]
    got = together.score_many(list(zip(states(together), asks)))
    for e, g in zip(expected, got):
        assert g == pytest.approx(e, abs=1e-5)
    assert len({len(s.ids) for s in states(alone)}) > 1  # prefix caches of several lengths in one pass


def test_engine_refuses_positions_outside_the_reasoning(tiny_model, short_chains):
    layout = render(short_chains[0], tiny_model.tokenizer)
    engine = Engine(tiny_model)
    state = engine.state(layout.ids, len(layout.prompt_ids), len(layout.post_ids))
    with pytest.raises(ValueError, match="not a set of reasoning indices"):
        engine.score(state, [[len(layout.reasoning_ids)]])


def test_the_engine_still_scores_after_the_hooked_model_ran(tiny_model, short_chains):
    """Features hook the same model through TransformerBridge; the engine's KV cache must survive it
    (transformers 5.24 renamed the cache argument that transformer-lens 4.3 reads, and it did not)."""
    from prunelens.hooked import sequence_features

    layout = render(short_chains[2], tiny_model.tokenizer)
    p, n, a = len(layout.prompt_ids), len(layout.reasoning_ids), len(layout.post_ids)
    before = Engine(tiny_model)
    expected = before.score(before.state(layout.ids, p, a), [[0], [n - 1]])
    features = sequence_features(tiny_model, layout.ids, p, n, families=("attn",))
    after = Engine(tiny_model)
    assert after.score(after.state(layout.ids, p, a), [[0], [n - 1]]) == pytest.approx(expected, abs=1e-5)
    # and the bridge's hooks still fire after scoring: the same attention features again
    again = sequence_features(tiny_model, layout.ids, p, n, families=("attn",))
    assert set(again) == set(features) and all(np.allclose(again[k], features[k]) for k in features)


def test_a_model_that_drops_the_cache_is_a_clear_error(tiny_model, short_chains):
    from transformers import DynamicCache

    from prunelens.errors import ModelLoadError

    layout = render(short_chains[2], tiny_model.tokenizer)
    engine = Engine(tiny_model)
    decoder = engine.decoder

    def dropping(**kwargs):  # what a bridged model did under transformers 5.24: the cache comes back unfilled
        out = decoder(**kwargs)
        out.past_key_values = DynamicCache(config=tiny_model.hf.config)
        return out

    engine.decoder = dropping
    with pytest.raises(ModelLoadError, match="KV cache empty under transformers"):
        engine.state(layout.ids, len(layout.prompt_ids), len(layout.post_ids))


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


def test_a_greedy_words_run_records_its_words_and_its_chains_keep_them_whole(tiny_model, short_chains, tmp_path):
    """The tokens table names each token's word (its position for token searches), and the chain at
    the ratio pruned to, which the search cut inside a word, holds every word whole or not at all."""
    from prunelens.schema import chains_at, present_at

    examples = short_chains[:4]
    for method in ("greedy-words", "greedy"):
        prune_examples(tiny_model, examples, tmp_path / method, method=method, keep_ratio=0.3, show_progress=False)
    words, tokens = (pd.read_parquet(tmp_path / m / "tokens.parquet") for m in ("greedy-words", "greedy"))
    assert (tokens.unit == tokens.position).all()
    cut = 0
    for example in examples:
        layout = render(example, tiny_model.tokenizer)
        rows = words[words.example_id == example.id].sort_values("position")
        assert rows.groupby("unit").position.agg(list).tolist() == layout.words
        present = present_at(rows, 0.3).to_numpy()
        assert all(present[w].all() or not present[w].any() for w in layout.words)
        n, kept = len(rows), int(present.sum())
        deleted = rows.deleted_step.notna().to_numpy()
        cut += int(kept > n - deleted.sum())  # the search stopped inside a word there
        assert n - n_to_delete(n, 0.3) <= kept < n - n_to_delete(n, 0.3) + max(map(len, layout.words))
    assert cut > 0  # the case this is about happened
    assert len(chains_at(tmp_path / "greedy-words", 0.3)) == len(examples)


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


def test_trajectory_grid_by_hand():
    assert trajectory_grid(40, 40) == list(range(0, 41, 2))  # every 0.05 of 40 tokens is 2 deletions
    assert trajectory_grid(40, 21) == list(range(0, 21, 2)) + [21]  # and the run's last state
    assert trajectory_grid(3, 3) == [0, 1, 2, 3]


@pytest.mark.parametrize("method", sorted(m for m in METHODS if not writes_text(METHODS[m])))
@pytest.mark.parametrize("trajectory", ["grid", "full"])
def test_every_trajectory_is_the_objective_of_its_states(tiny_model, short_chains, tiny_pruner, method, trajectory):
    """Each method's recorded trajectory equals full forward passes over the states its order visits;
    an ordering method's grid trajectory is scored exactly at the grid's states and NaN elsewhere."""
    layout = render(short_chains[4], tiny_model.tokenizer)
    extra = {"pruner": str(tiny_pruner)} if method == "learned" else {}
    result = prune(tiny_model, layout, method=method, keep_ratio=0.3, example_id="x", trajectory=trajectory, **extra)
    n = len(layout.reasoning_ids)
    assert len(result.order) == n_to_delete(n, 0.3) == len(set(result.order))
    assert len(result.trajectory) == len(result.order) + 1
    scored = np.isfinite(result.trajectory)
    if trajectory == "grid" and not hasattr(METHODS[method], "steps"):  # searches record every state
        assert list(np.flatnonzero(scored)) == trajectory_grid(n, len(result.order))
    else:
        assert scored.all()
    expected = np.array(NaiveReference(tiny_model).trajectory(layout, result.order))
    assert np.abs(np.array(result.trajectory)[scored] - expected[scored]).max() < 1e-5


def test_baseline_orders(tiny_model, short_chains):
    layout = render(short_chains[4], tiny_model.tokenizer)
    n = len(layout.reasoning_ids)
    assert prune(tiny_model, layout, method="truncate").order == list(range(n - 1, -1, -1))
    r1 = prune(tiny_model, layout, method="random", seed=1, example_id="x")
    assert r1.order == prune(tiny_model, layout, method="random", seed=1, example_id="x").order
    assert r1.order != prune(tiny_model, layout, method="random", seed=2, example_id="x").order
    assert r1.order != prune(tiny_model, layout, method="random", seed=1, example_id="y").order
    ids = layout.ids  # surprisal: lowest first, from one independent forward pass
    with torch.no_grad():
        logits = tiny_model.hf(torch.tensor([ids])).logits[0]
    p = len(layout.prompt_ids)
    lp = token_logprobs(logits[p - 1: p + n - 1], torch.tensor(layout.reasoning_ids))
    assert prune(tiny_model, layout, method="surprisal").order == sorted(range(n), key=lambda j: -float(lp[j]))


def _plain_attentions(model, layout):
    """Every layer's attention pattern [1, heads, T, T] from plain transformers (eager)."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(model.path, attn_implementation="eager").eval()
    with torch.no_grad():
        return plain(torch.tensor([layout.ids]), output_attentions=True).attentions


def test_attention_baseline_follows_attention_summed_by_hand(tiny_model, short_chains):
    layout = render(short_chains[9], tiny_model.tokenizer)
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    attentions = _plain_attentions(tiny_model, layout)
    received = torch.stack([a[0, :, p + n:, p: p + n].mean(1) for a in attentions]).mean((0, 1))
    expected = sorted(range(n), key=lambda j: float(received[j]))
    assert prune(tiny_model, layout, method="attention").order == expected


def test_h2o_equals_attention_received_summed_by_hand(tiny_model, short_chains):
    layout = render(short_chains[9], tiny_model.tokenizer)
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    received = torch.zeros(n, dtype=torch.float64)
    for a in _plain_attentions(tiny_model, layout):  # every later query, every head, every layer
        for j in range(n):
            received[j] += a[0, :, p + j + 1:, p + j].double().sum()
    expected = sorted(range(n), key=lambda j: float(received[j]))
    assert prune(tiny_model, layout, method="h2o").order == expected


def test_config_is_validated_before_any_work():
    for bad, message in [({"method": "magic"}, "unknown method"), ({"objective": "everything"}, "unknown objective"),
                         ({"keep_ratio": 1.0}, "keep ratio"), ({"fast_share": 0}, "fast_share"),
                         ({"batch_share": 1.0}, "batch_share"), ({"max_batch": 0}, "max_batch"),
                         ({"dtype": "int8"}, "unknown dtype"), ({"trajectory": "some"}, "unknown trajectory")]:
        with pytest.raises(ValueError, match=message):
            PruneConfig(**bad)
    with pytest.raises(ValueError, match="unknown pruning settings"):
        PruneConfig.from_dict({"method": "greedy", "beam": 3})
    config = PruneConfig(method="greedy-fast", fast_share=0.2)
    assert PruneConfig.from_dict(config.to_dict()) == config


def test_prune_examples_writes_tables_and_resumes(tiny_model, short_chains, tmp_path):
    examples = short_chains[:4]
    out = tmp_path / "run"
    first = prune_examples(tiny_model, examples[:2], out, show_progress=False)
    assert first == {"done": 2, "resumed": 0, "skipped": [], "retried": 0, "merged": True}
    again = prune_examples(tiny_model, examples, out, show_progress=False, max_batch=2)  # resources may change
    assert again == {"done": 2, "resumed": 2, "skipped": [], "retried": 0, "merged": True}
    recorded = json.loads((out / "prune.json").read_text())
    assert recorded == {**PruneConfig().to_dict(), "model": tiny_model.name, "dtype": "float32", "data": None,
                        "fast_share": None, "fast_refresh": None, "fast_neighbours": None, "batch_share": None,
                        "trajectory": None, "segment_tokens": None, "passes": None}  # greedy uses none of these
    ex = pd.read_parquet(out / "examples.parquet")
    tok = pd.read_parquet(out / "tokens.parquet")
    assert list(ex.example_id) == sorted((e.id for e in examples), key=lambda s: int(s.split("-")[1]))
    for column in ["example_id", "question", "reasoning", "answer", "model", "method", "objective",
                   "prompt_ids", "reasoning_ids", "post_ids", "order", "objective_trajectory", "seconds",
                   "tokens_processed", "tokens_needed"]:
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
        prune_examples(tiny_model, examples, out, method="random", show_progress=False)
    prune_examples(tiny_model, examples, out, fast_share=0.3, show_progress=False)  # greedy ignores it
    fast = tmp_path / "fast"
    prune_examples(tiny_model, examples[:1], fast, method="greedy-fast", keep_ratio=0.8, show_progress=False)
    with pytest.raises(RunError, match=f"fast_share={GreedyFast().share} \\(now 0.3\\)"):
        prune_examples(tiny_model, examples, fast, method="greedy-fast", keep_ratio=0.8, fast_share=0.3,
                       show_progress=False)


@pytest.mark.parametrize("method,keep", [("greedy", 0.0), ("greedy-fast", 0.3), ("greedy-words", 0.3),
                                         ("greedy-batch", 0.3)])
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


def test_lockstep_is_refused_where_it_cannot_apply(tiny_model, short_chains, tmp_path):
    from prunelens.cluster import RayOptions

    with pytest.raises(ValueError, match="lockstep is for the searches .greedy, greedy-words, greedy-fast, greedy-batch., not random"):
        PruneConfig(method="random", lockstep=2)
    with pytest.raises(ValueError, match="not with --ray"):
        prune_examples(tiny_model, short_chains[:2], tmp_path / "run", lockstep=2, ray=RayOptions("local"),
                       show_progress=False)


def test_a_run_never_mixes_data(tiny_model, short_chains, tmp_path):
    out = tmp_path / "run"
    prune_examples(tiny_model, short_chains[:2], out, method="truncate", data="gsm8k:/data/test.jsonl",
                   show_progress=False)
    with pytest.raises(RunError, match="data='gsm8k:/data/test.jsonl' \\(now 'gsm8k:/data/train.jsonl'\\)"):
        prune_examples(tiny_model, short_chains[:2], out, method="truncate", data="gsm8k:/data/train.jsonl",
                       show_progress=False)
    other = Example(short_chains[0].id, short_chains[5].question, short_chains[5].reasoning, short_chains[5].answer)
    with pytest.raises(RunError, match=f"another text under id {short_chains[0].id}"):
        prune_examples(tiny_model, [other], out, method="truncate", data="gsm8k:/data/test.jsonl",
                       show_progress=False)
    again = prune_examples(tiny_model, short_chains[:2], out, method="truncate", data="gsm8k:/data/test.jsonl",
                           show_progress=False)
    assert again["resumed"] == 2


def test_shards_share_a_run_and_merge(tiny_model, short_chains, tmp_path):
    examples = short_chains[:5]
    out = tmp_path / "sharded"
    for shard in ("0/2", "1/2"):
        summary = prune_examples(tiny_model, examples, out, method="truncate", shard=shard, show_progress=False)
        assert not summary["merged"] and not (out / "examples.parquet").exists()  # one merge, at the end
    StageStore(out, "prune", ("tokens", "examples")).merge()
    ex = pd.read_parquet(out / "examples.parquet")
    assert sorted(ex.example_id) == sorted(e.id for e in examples)


def test_bad_examples_stop_or_are_skipped(tiny_model, short_chains, tmp_path):
    from prunelens.layout import LayoutError

    bad = Example("bad-1", "q", "word " * 1200, "1")  # longer than the tiny model's 1024 positions
    examples = [short_chains[0], bad, short_chains[1]]
    with pytest.raises(LayoutError, match="bad-1: .* exceed the model's context of 1024"):
        prune_examples(tiny_model, examples, tmp_path / "a", method="truncate", show_progress=False)
    assert not (tmp_path / "a" / "parts").exists()  # checked before the first example was pruned
    summary = prune_examples(tiny_model, examples, tmp_path / "b", method="truncate", skip_bad=True,
                             show_progress=False)
    assert summary["done"] == 2 and len(summary["skipped"]) == 1


@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_reuse_across_steps_changes_no_score(tiny_model, short_chains, objective, width):
    """Candidates that reuse their segment from earlier steps score exactly like fresh full passes:
    candidates and deletions of one token, or of runs of ``width`` adjacent tokens (words)."""
    layout = render(short_chains[6], tiny_model.tokenizer)
    p, n, a = len(layout.prompt_ids), len(layout.reasoning_ids), len(layout.post_ids)
    prompt, reasoning, post = layout.prompt_ids, layout.reasoning_ids, layout.post_ids
    engine, naive = Engine(tiny_model, objective), NaiveReference(tiny_model, objective)
    state = engine.state(layout.ids, p, a)
    kept = list(range(n))

    def runs() -> list[list[int]]:
        return [list(range(j, j + width)) for j in range(len(kept) - width + 1)]

    def check_every_candidate() -> None:
        scores = engine.score(state, runs())
        expected = naive.objectives([pruned_ids(prompt, reasoning, post, [k for i, k in enumerate(kept) if i not in run])
                                     for run in runs()], p, a)
        assert np.abs(np.array(scores) - expected).max() < 1e-5

    # early, then late (memos built on reused ones are read past their reused part), early, middle
    for deleted in (n // 3, n - 4 - 2 * width, 2, n // 2 - width):
        check_every_candidate()
        del kept[deleted: deleted + width]
        state = engine.advance(state, pruned_ids(prompt, reasoning, post, kept), p + deleted, deleted=deleted)
        # a run ending before d keeps a memo while it holds at least 2 positions: k <= d - width - 2
        assert set(state.memo) == {tuple(range(k, k + width)) for k in range(deleted - width - 1)}
    before = engine.useful
    check_every_candidate()
    fresh = Engine(tiny_model, objective, reuse=False)
    fresh.score(fresh.state(state.ids, p, a), runs())
    assert engine.useful - before < fresh.useful - len(state.ids)  # the memo saved work
