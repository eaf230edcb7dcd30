"""The run's schema (``prunelens.schema``): feature names, the chain at a keep ratio."""

import pandas as pd
import pytest

from prunelens.errors import RunError
from prunelens.ops import n_to_delete
from prunelens.schema import (
    FeatureName,
    chains_at,
    feature_names,
    load_tokens,
    present_at,
    reaches,
)


def test_feature_names_parse_what_features_writes(full_run):
    """Every column the features stage writes is named by FeatureName, and the name prints back."""
    features = pd.read_parquet(full_run["greedy"] / "features.parquet")
    columns = [c for c in features.columns if c not in ("example_id", "position")]
    assert [str(n) for n in feature_names(columns)] == columns
    assert FeatureName.parse("attn_answer.L3.H11") == FeatureName("attn_answer", 3, 11)
    assert FeatureName.parse("attn_later.mean@0.5") == FeatureName("attn_later", mean=True, keep=0.5)
    assert FeatureName.parse("resid_hoyer.L0").kind == "sparsity"
    assert FeatureName.parse("surprisal@0.25") == FeatureName("surprisal", keep=0.25)
    for other in ("example_id", "deleted_step", "category", "attn_answer.X1", "unknown.L1"):
        assert FeatureName.parse(other) is None


def _hand_run(root, deleted):
    """A run of one chain of four tokens written by hand."""
    root.mkdir()
    pd.DataFrame({"example_id": ["a"], "question": ["Q?"], "reasoning": ["5 - 2 = 3"], "answer": ["3"],
                  "n_reasoning": [4]}).to_parquet(root / "examples.parquet")
    pd.DataFrame({"example_id": "a", "position": [0, 1, 2, 3], "token_text": ["5", " - 2", " =", " 3"],
                  "deleted_step": pd.array(deleted, dtype="Int64")}).to_parquet(root / "tokens.parquet")
    return root


def test_chains_at_by_hand(tmp_path):
    run = _hand_run(tmp_path / "full", [3, 1, 2, 4])
    at = {r: chains_at(run, r).iloc[0] for r in (1.0, 0.75, 0.5, 0.25, 0.0)}
    assert at[1.0].reasoning == "5 - 2 = 3" and at[1.0].n_kept == 4 and at[1.0].n_tokens == 4
    assert at[0.75].reasoning == "5 = 3"  # step 1 deleted " - 2"
    assert at[0.5].reasoning == "5 3" and at[0.25].reasoning == "3" and at[0.0].n_kept == 0
    stopped = _hand_run(tmp_path / "stopped", [None, 1, 2, None])  # pruned with --keep-ratio 0.5
    assert chains_at(stopped, 0.5).iloc[0].reasoning == "5 3"
    assert reaches(load_tokens(stopped), 0.5) and not reaches(load_tokens(stopped), 0.25)
    with pytest.raises(RunError, match="a: the run stopped before keep ratio 0.25"):
        chains_at(stopped, 0.25)


def test_a_keep_ratio_keeps_a_word_it_would_cut_whole(tmp_path):
    """greedy-words deletes " 31" "2" (one word) at steps 1 and 2: keep 0.75 (one deletion) keeps the
    word whole, where a token run (no unit column) would read "x2 y"."""
    root = tmp_path / "words"
    root.mkdir()
    pd.DataFrame({"example_id": ["a"], "question": ["Q?"], "reasoning": ["x 312 y"], "answer": ["3"],
                  "n_reasoning": [4]}).to_parquet(root / "examples.parquet")
    tokens = pd.DataFrame({"example_id": "a", "position": [0, 1, 2, 3], "token_text": ["x", " 31", "2", " y"],
                           "deleted_step": pd.array([3, 1, 2, 4], dtype="Int64"), "unit": [0, 1, 1, 2]})
    tokens.to_parquet(root / "tokens.parquet")
    at = {r: chains_at(root, r).iloc[0] for r in (0.75, 0.5, 0.25)}
    assert (at[0.75].reasoning, at[0.75].n_kept) == ("x 312 y", 4)
    assert (at[0.5].reasoning, at[0.5].n_kept) == ("x y", 2) and at[0.25].reasoning == "y"
    assert present_at(tokens.drop(columns="unit"), 0.75).tolist() == [True, False, True, True]


def test_chains_at_decodes_what_the_pruner_scored(full_run, tiny_model):
    """The text of a real run at a keep ratio is the decoded token sequence the objective scored."""
    from prunelens.ops import pruned_ids

    examples = pd.read_parquet(full_run["greedy"] / "examples.parquet").set_index("example_id")
    for ratio in (1.0, 0.5, 0.2):
        for row in chains_at(full_run["greedy"], ratio).itertuples():
            ex = examples.loc[row.example_id]
            deleted = set(ex.order[: n_to_delete(ex.n_reasoning, ratio)])
            kept = [k for k in range(ex.n_reasoning) if k not in deleted]
            assert row.n_kept == len(kept)
            assert row.reasoning == tiny_model.tokenizer.decode(pruned_ids([], ex.reasoning_ids, [], kept)).strip()
