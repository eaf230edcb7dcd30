"""Dynamic importance (``prunelens.dynamic``) against the naive reference."""

import numpy as np
import pandas as pd
import pytest

from prunelens.errors import RunError
from prunelens.ops import n_to_delete


def test_dynamic_scores_equal_the_naive_reference_at_each_keep_ratio(full_run, tiny_model):
    """Each candidate's post-deletion objective at keep r is a full forward pass over the chain greedy
    leaves at r with that token deleted too; features are those of that pruned chain."""
    from prunelens.analysis import dynamic_regression
    from prunelens.dynamic import dynamic_run
    from prunelens.hooked import sequence_features
    from prunelens.layout import Layout
    from prunelens.pruning import NaiveReference

    table = pd.read_parquet(dynamic_run(tiny_model, full_run["greedy"], keeps=(1.0, 0.5), show_progress=False))
    examples = pd.read_parquet(full_run["greedy"] / "examples.parquet")
    naive = NaiveReference(tiny_model)
    for row in examples.head(2).itertuples():
        n = row.n_reasoning
        for keep in (1.0, 0.5):
            kept = sorted(set(range(n)) - set(row.order[: n_to_delete(n, keep)]))
            rows = table[(table.example_id == row.example_id) & (table.keep_ratio == keep)]
            assert rows.position.tolist() == kept
            layout = Layout(list(row.prompt_ids), list(row.reasoning_ids), list(row.post_ids), [(0, 0)] * n)
            expected = naive.candidate_scores(layout, kept)
            assert np.abs(rows.post_objective.to_numpy() - np.array(expected)).max() < 1e-5
            ids = list(row.prompt_ids) + [row.reasoning_ids[j] for j in kept] + list(row.post_ids)
            attention = sequence_features(tiny_model, ids, len(row.prompt_ids), len(kept), families=("attn",))
            assert np.allclose(rows["attn_answer.L1.H2"], attention["attn_answer.L1.H2"])
    result = dynamic_regression(table, models=("ridge",))
    assert set(result.keep_ratio) == {"pooled", "1", "0.5"} and result.pearson.notna().all()
    with pytest.raises(RunError, match="dynamic importance follows exact greedy"):
        dynamic_run(tiny_model, full_run["random"], show_progress=False)
