"""The flat engine against the naive algorithm (float64: identical orders, trajectories within 1e-10),
a chain alone against the same chain beside others, the pool's slots, and the operations a pass
dispatches, which must not grow with its candidates or chains."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from helpers import deletion_sets
from torch.utils._python_dispatch import TorchDispatchMode

from prunelens.layout import Layout
from prunelens.models import load_model
from prunelens.pruning import PruneConfig
from prunelens.pruning.engine import Engine
from prunelens.pruning.flat import FlatEngine
from prunelens.pruning.reference import NaiveReference
from prunelens.pruning.search import drive, greedy_steps, lockstep, word_steps
from prunelens.pruning.stage import make_engine

TOL = 1e-10


@pytest.fixture(scope="module")
def model64(tiny_model):
    """The tiny random Llama in float64, loaded afresh (the session's may have been hooked by the
    bridge, whose attention modules bypass the flat engine's): rounding is then far below any
    difference a bug makes."""
    return load_model(str(tiny_model.path), device="cpu", dtype=torch.float64)


def _layouts(model, short_chains, n=3, tokens=10):
    from prunelens.layout import render

    out = []
    for example in short_chains[:n]:
        lay = render(example, model.tokenizer)
        k = min(tokens, len(lay.reasoning_ids))
        out.append(Layout(lay.prompt_ids, lay.reasoning_ids[:k], lay.post_ids, lay.spans[:k], lay.reasoning))
    return out


@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_greedy_equals_naive_in_float64(model64, short_chains, objective):
    for lay in _layouts(model64, short_chains, n=2):
        engine = FlatEngine(model64, objective)
        ranking = drive(engine, greedy_steps(engine, lay, len(lay.reasoning_ids), None, lambda k: None))
        order, trajectory = NaiveReference(model64, objective).run(lay)
        assert ranking.order == order
        assert np.abs(np.array(ranking.trajectory) - np.array(trajectory)).max() < TOL


def test_greedy_words_equals_naive_in_float64(model64, short_chains):
    lay = _layouts(model64, short_chains, n=1, tokens=14)[0]
    engine = FlatEngine(model64)
    ranking = drive(engine, word_steps(engine, lay, len(lay.reasoning_ids), lambda k: None))
    order, trajectory = NaiveReference(model64).run(lay, units=lay.words)
    assert ranking.order == order
    assert np.abs(np.array(ranking.trajectory) - np.array(trajectory)).max() < TOL


@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_any_deletion_set_scores_as_the_rows_engine_and_naive(model64, short_chains, objective):
    lay = _layouts(model64, short_chains, n=1, tokens=12)[0]
    p, a, n = len(lay.prompt_ids), len(lay.post_ids), len(lay.reasoning_ids)
    sets = deletion_sets(n)  # single tokens, runs, far apart, first, last, all but one, random sets
    flat, rows = FlatEngine(model64, objective), Engine(model64, objective)
    got = flat.score(flat.state(lay.ids, p, a), sets)
    # the rows engine keeps its log-probs in float32, whatever the model's dtype
    assert np.abs(np.array(got) - np.array(rows.score(rows.state(lay.ids, p, a), sets))).max() < 1e-5
    naive = NaiveReference(model64, objective)
    expected = [naive.objectives([lay.prompt_ids + [t for k, t in enumerate(lay.reasoning_ids) if k not in set(d)]
                                  + lay.post_ids], p, a)[0] for d in sets]
    assert np.abs(np.array(got) - np.array(expected)).max() < TOL


def test_a_chain_alone_equals_the_chain_beside_others(model64, short_chains):
    layouts = _layouts(model64, short_chains, n=3, tokens=8)
    engine = FlatEngine(model64)
    together = dict(lockstep(engine, ((i, greedy_steps(engine, lay, len(lay.reasoning_ids), None, lambda k: None))
                                      for i, lay in enumerate(layouts)), width=3))
    for i, lay in enumerate(layouts):
        alone = FlatEngine(model64)
        ranking = drive(alone, greedy_steps(alone, lay, len(lay.reasoning_ids), None, lambda k: None))
        assert together[i].order == ranking.order
        assert np.abs(np.array(together[i].trajectory) - np.array(ranking.trajectory)).max() < TOL
    assert engine.passes < sum(len(lay.reasoning_ids) for lay in layouts)  # the chains shared their passes


def test_pool_slots_come_back(model64, short_chains):
    lay = _layouts(model64, short_chains, n=1, tokens=8)[0]
    total, p = len(lay.ids), len(lay.prompt_ids)
    engine = FlatEngine(model64)
    state = engine.state(lay.ids, p, len(lay.post_ids))
    engine.score(state, [[j] for j in range(8)])
    # the state's own slots, and each candidate's memo: deleting j, positions p + j .. total - 3 of its
    # sequence (all but its last token); the rest of the pass's slots went back
    assert engine.pool.used == total - 1 + sum(total - 2 - p - j for j in range(8))
    advanced = engine.advance(state, lay.ids[:p + 5] + lay.ids[p + 6:], p + 5, deleted=5)
    del state
    engine.objective_of(advanced)
    # shared slots held once more, the old tail released; candidates 0..3 keep their first 4 - j positions
    assert sorted((k, m.valid) for k, m in advanced.memo.items()) == [((0,), 4), ((1,), 3), ((2,), 2), ((3,), 1)]
    assert engine.pool.used == total - 2 + 4 + 3 + 2 + 1
    del advanced
    assert engine.pool.used == 0


@pytest.mark.parametrize("words", [False, True])
def test_the_memo_changes_the_work_not_the_result(model64, short_chains, words):
    """Memo on, memo off, a memo budget too small for any memo and one for a few: the same order and
    trajectory within 1e-10; the memo spares tokens, less so within a tight budget, which it keeps."""
    lay = _layouts(model64, short_chains, n=1, tokens=12)[0]
    n = len(lay.reasoning_ids)

    def run(engine):
        steps = word_steps(engine, lay, n, lambda k: None) if words else \
            greedy_steps(engine, lay, n, None, lambda k: None)
        return drive(engine, steps), engine.tokens

    class Peak(FlatEngine):
        peak = 0

        def score_many(self, requests):
            out = super().score_many(requests)
            self.peak = max(self.peak, self.memo_held)
            return out

    tight = Peak(model64)
    tight.memo_slots = 20  # room for a few memos at a time
    (on, spent_on), (off, spent_off), (starved, spent_starved), (some, spent_some) = (
        run(FlatEngine(model64)), run(FlatEngine(model64, memo=False)), run(FlatEngine(model64, memory_gib=1e-9)),
        run(tight))
    for other in (off, starved, some):
        assert on.order == other.order
        assert np.abs(np.array(on.trajectory) - np.array(other.trajectory)).max() < TOL
    assert spent_on < spent_some < spent_off == spent_starved
    assert 0 < tight.peak <= 20 and tight.memo_held == 0  # and every memo's slots came back


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def test_operations_per_pass_do_not_grow_with_candidates_or_chains(model64, short_chains):
    layouts = _layouts(model64, short_chains, n=3, tokens=12)

    def count(chains: int, candidates: int) -> Counter:
        engine = FlatEngine(model64)
        requests = [(engine.state(lay.ids, len(lay.prompt_ids), len(lay.post_ids)), [[j] for j in range(candidates)])
                    for lay in layouts[:chains]]  # every state pending: its own tokens go in the same pass
        with _Count() as mode:
            engine.score_many(requests)
        assert engine.passes == 1
        return mode.ops

    base = count(1, 2)
    assert count(1, 12) == base and count(3, 12) == base and count(3, 2) == base
    # a pass that reads memos: an advanced state (pending) and candidates, some with a memo
    engine = FlatEngine(model64)
    lay = layouts[0]
    p = len(lay.prompt_ids)
    state = engine.state(lay.ids, p, len(lay.post_ids))
    engine.score(state, [[j] for j in range(12)])
    advanced = engine.advance(state, lay.ids[:p + 6] + lay.ids[p + 7:], p + 6, deleted=6)
    with _Count() as mode:
        engine.score_many([(advanced, [[j] for j in range(11)])])
    assert advanced.memo and mode.ops == base
    assert sum(base.values()) > 0


def test_the_flat_engine_is_chosen_on_cuda_and_by_name(model64):
    assert isinstance(make_engine(model64, PruneConfig()), Engine)  # auto on the CPU: rows
    assert isinstance(make_engine(model64, PruneConfig(engine="flat")), FlatEngine)
    with pytest.raises(ValueError, match="unknown engine 'paged'"):
        PruneConfig(engine="paged")


def test_sliding_windows_are_applied_per_layer(tmp_path, short_chains):
    from families import build

    from prunelens.layout import render
    from prunelens.models import load_model

    model = load_model(str(build("qwen2.5", tmp_path / "q", window=8)), device="cpu", dtype=torch.float64)
    lay = render(short_chains[0], model.tokenizer)
    lay = Layout(lay.prompt_ids, lay.reasoning_ids[:8], lay.post_ids, lay.spans[:8], lay.reasoning)
    engine = FlatEngine(model)
    ranking = drive(engine, greedy_steps(engine, lay, 8, None, lambda k: None))
    order, trajectory = NaiveReference(model).run(lay)
    assert ranking.order == order and np.abs(np.array(ranking.trajectory) - np.array(trajectory)).max() < TOL


def test_a_hooked_model_is_refused_not_scored_wrong(model64, short_chains):
    """TransformerLens's bridge replaces the attention modules, which then never call the flat
    engine's attention: a pass must stop, not score the chains as one causal sequence."""
    hooked = load_model(str(model64.path), device="cpu", dtype=torch.float64)
    hooked.bridge  # noqa: B018  (booting the bridge is what hooks the model)
    lay = _layouts(hooked, short_chains, n=1, tokens=4)[0]
    engine = FlatEngine(hooked)
    with pytest.raises(RuntimeError, match="hooked by TransformerLens"):
        engine.score(engine.state(lay.ids, len(lay.prompt_ids), len(lay.post_ids)), [[0]])
    assert isinstance(make_engine(hooked, PruneConfig()), Engine)
