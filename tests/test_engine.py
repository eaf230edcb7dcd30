"""The scoring engine (``prunelens.pruning.engine``) against plain forward passes."""

import math

import numpy as np
import pytest
import torch
from helpers import deletion_sets, objective_by_hand

from prunelens.layout import render
from prunelens.ops import pruned_ids
from prunelens.pruning import Engine, NaiveReference


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
