"""The pruning stage (``prunelens.pruning.stage``): tables, resume, trajectories, shards, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from prunelens.data import Example
from prunelens.layout import render
from prunelens.ops import n_to_delete, trajectory_grid
from prunelens.pruning import (
    METHODS,
    NaiveReference,
    PruneConfig,
    prune,
    prune_examples,
    writes_text,
)
from prunelens.pruning.search import GreedyFast
from prunelens.store import RunError, StageStore


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


def test_prune_examples_writes_tables_and_resumes(tiny_model, short_chains, tmp_path):
    examples = short_chains[:4]
    out = tmp_path / "run"
    first = prune_examples(tiny_model, examples[:2], out, show_progress=False)
    assert first == {"done": 2, "resumed": 0, "skipped": [], "retried": 0, "merged": True}
    again = prune_examples(tiny_model, examples, out, show_progress=False, max_batch=2)  # resources may change
    assert again == {"done": 2, "resumed": 2, "skipped": [], "retried": 0, "merged": True}
    recorded = json.loads((out / "prune.json").read_text())
    assert recorded == {**PruneConfig().to_dict(), "model": tiny_model.name, "dtype": "float32", "data": None,
                        # what it ran in (sdpa, or eager once another test has hooked the shared model), and
                        # the layout auto chose
                        "attention": tiny_model.hf.config._attn_implementation, "layout": "plain",
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
