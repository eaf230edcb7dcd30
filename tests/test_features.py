"""The features stage (``prunelens.features``): a keyed table, resume, the run's model."""

import pandas as pd
import pytest

from prunelens.features import features_run
from prunelens.ops import n_to_delete
from prunelens.pruning import prune_examples
from prunelens.store import RunError


def test_features_run_writes_a_keyed_table_and_resumes(tiny_model, short_chains, tmp_path):
    run = tmp_path / "run"
    prune_examples(tiny_model, short_chains[:2], run, method="greedy", show_progress=False)
    path = features_run(tiny_model, run, at_keep=[0.5], show_progress=False)["path"]
    feats = pd.read_parquet(path)
    tokens = pd.read_parquet(run / "tokens.parquet")
    assert feats[["example_id", "position"]].equals(tokens[["example_id", "position"]])
    for column in ["attn_answer.L1.H3", "attn_answer.L0", "attn_answer.mean", "attn_later.mean", "attn_next.L1",
                   "attn_to_prompt.L0", "mlp_sparsity.L1", "resid_hoyer.L0", "surprisal", "position_norm",
                   "is_digit", "is_punct", "token_chars", "attn_answer.mean@0.5"]:
        assert column in feats, column
    assert feats["attn_answer.L0"].between(0, 1).all() and feats["mlp_sparsity.L1"].between(0, 1).all()
    # at keep 0.5, the first half of the deletion order is gone: NaN there, numbers elsewhere
    first = tokens[tokens.example_id == short_chains[0].id]
    n = len(first)
    gone = first.deleted_step.notna() & (first.deleted_step <= n_to_delete(n, 0.5))
    rows = feats[feats.example_id == short_chains[0].id]
    assert rows["surprisal@0.5"].isna().to_numpy().tolist() == gone.to_numpy().tolist()
    # resuming does no new work; other settings are refused
    assert features_run(tiny_model, run, at_keep=[0.5], show_progress=False)["path"] == path
    with pytest.raises(RunError, match="at_keep"):
        features_run(tiny_model, run, show_progress=False)




def test_features_refuse_a_run_of_another_model(model, tiny_model, short_chains, tmp_path):
    run = tmp_path / "run"
    prune_examples(tiny_model, short_chains[:1], run, method="truncate", show_progress=False)
    with pytest.raises(RunError, match="pass --model to match"):
        features_run(model, run, show_progress=False)
