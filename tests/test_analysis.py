"""The study's tables (``prunelens.analysis``) against values by hand and grouped cross-validation."""

import numpy as np
import pandas as pd
import pytest

from prunelens.analysis import (
    analyze,
    broken_numbers,
    category_survival,
    headline,
    normalised_objective,
    order_agreement,
    survival_difference,
)
from prunelens.errors import RunError
from prunelens.schema import load_tokens, present_at


def test_survival_against_uniform_by_hand():
    # two examples of 4 tokens; at keep 0.5 two of each go. Symbolic tokens are deleted last.
    tokens = pd.DataFrame({
        "example_id": ["a"] * 4 + ["b"] * 4, "position": [0, 1, 2, 3] * 2,
        "deleted_step": pd.array([4, 1, 2, 3, 3, 1, 4, 2], dtype="Int64"),
        "category": ["SYMBOLIC_MATH", "FUNCTION", "FUNCTION", "SYMBOLIC_MATH"] * 2,
    })
    assert present_at(tokens, 0.5).tolist() == [True, False, False, True, True, False, True, False]
    table = category_survival(tokens, ratios=[0.5]).set_index("category")
    assert table.loc["SYMBOLIC_MATH", "survival"] == 0.75 and table.loc["FUNCTION", "survival"] == 0.25
    assert table.loc["SYMBOLIC_MATH", "uniform"] == 0.5
    assert table.loc["SYMBOLIC_MATH", "ratio"] == 1.5 and table.loc["FUNCTION", "ratio"] == 0.5


def _chains(steps: dict[str, list], categories: dict[str, list]) -> pd.DataFrame:
    return pd.DataFrame({"example_id": [e for e in steps for _ in steps[e]],
                         "position": [p for e in steps for p in range(len(steps[e]))],
                         "deleted_step": pd.array([s for e in steps for s in steps[e]], dtype="Int64"),
                         "category": [c for e in steps for c in categories[e]]})


def test_survival_difference_is_paired_by_problem():
    """Two runs of problems a and b with chains of other lengths. At keep 0.5 both runs keep every
    symbolic token of a and none of b, so a bootstrap draw of problems moves both runs alike: every
    draw's difference is 0 (unpaired draws would range from -2 to 2). Problem c, in one run only, is
    left out (its deleted symbolic token would lower that run's ratio)."""
    four, two = ["SYMBOLIC_MATH", "FUNCTION", "FUNCTION", "SYMBOLIC_MATH"], ["SYMBOLIC_MATH", "FUNCTION"]
    own = _chains({"a": [None, 1, 2, None], "b": [1, None, None, 2]}, {"a": four, "b": four})
    reference = _chains({"a": [None, 1], "b": [1, None], "c": [1, None]}, {"a": two, "b": two, "c": two})
    table = survival_difference(own, reference, ratio=0.5).set_index("category")
    # symbolic: own keeps 2 of 4 where uniform deletion keeps 2 (1 per chain), ratio 1; reference 1 of 2, ratio 1
    assert table.loc["SYMBOLIC_MATH", ["ratio", "ratio_other", "difference"]].tolist() == [1, 1, 0]
    assert table.loc["SYMBOLIC_MATH", ["tokens", "tokens_other", "examples"]].tolist() == [4, 2, 2]
    assert table.loc["SYMBOLIC_MATH", ["difference_ci_low", "difference_ci_high"]].tolist() == [0, 0]
    assert table.loc["FUNCTION", ["difference_ci_low", "difference_ci_high"]].tolist() == [0, 0]
    # a run that keeps symbolic tokens where the other deletes them: own 2 of uniform's 2 in a, reference 0 of 0.5
    flipped = _chains({"a": [1, None], "b": [None, 1]}, {"a": two, "b": two})
    table = survival_difference(own, flipped, ratio=0.5).set_index("category")
    assert table.loc["SYMBOLIC_MATH", "ratio_other"] == 1 and table.loc["SYMBOLIC_MATH", "difference"] == 0
    assert table.loc["SYMBOLIC_MATH", "difference_ci_low"] == pytest.approx(-2)
    assert table.loc["SYMBOLIC_MATH", "difference_ci_high"] == pytest.approx(2)
    # a category one run has and the other lacks: ratio NaN where it is absent, no interval
    hedged = reference.assign(category=reference.category.where(reference.position == 0, "META_DISCOURSE"))
    table = survival_difference(own, hedged, ratio=0.5).set_index("category")
    assert table.loc["META_DISCOURSE", "tokens"] == 0 and table.loc["META_DISCOURSE", "tokens_other"] == 2
    assert np.isnan(table.loc["META_DISCOURSE", "ratio"]) and table.loc["META_DISCOURSE", "ratio_other"] == 1
    assert np.isnan(table.loc["META_DISCOURSE", "difference_ci_low"])
    with pytest.raises(RunError, match="share no example"):
        survival_difference(own, reference[reference.example_id == "c"])


def test_broken_numbers_by_hand():
    # keep 0.5 deletes 4 of 8 tokens: a keeps " 31 27" (both stated), b keeps " 1 3 15" (1 is not)
    texts = {"a": [" 3", "1", "-", "4", " =", " 2", "7", "."], "b": [" 1", "2", " +", " 3", " =", " 1", "5", "."]}
    steps = {"a": [None, None, 1, 2, 3, None, None, 4], "b": [None, 1, 2, None, 3, None, None, 4]}
    tokens = pd.DataFrame({"example_id": ["a"] * 8 + ["b"] * 8, "position": list(range(8)) * 2,
                           "token_text": texts["a"] + texts["b"],
                           "deleted_step": pd.array(steps["a"] + steps["b"], dtype="Int64")})
    said = {"a": "Ann has 31 and gives 4.\n31-4 = 27.\n27", "b": "12 and 3?\n12 + 3 = 15.\n15"}
    table = broken_numbers(tokens, said, ratios=[0.5], draws=1).set_index("keep_ratio")
    assert table.loc[0.5, "broken"] == pytest.approx(1 / 5)
    # one chain "12 50". Losing 2 of its 4 tokens: of the 6 equally likely pairs kept, " 1 5", " 10", "2 5"
    # and "20" state only broken numbers, "12" and " 50" none: 4/6 on average. Losing 1: "2 50", " 1 50"
    # and " 12 5" break one number of two, " 120" its only one: (3 * 1/2 + 1) / 4
    one = pd.DataFrame({"example_id": ["c"] * 4, "position": range(4), "token_text": [" 1", "2", " 5", "0"],
                        "deleted_step": pd.array([1, 2, None, None], dtype="Int64")})
    table = broken_numbers(one, {"c": "12 50"}, ratios=[0.75, 0.5], draws=3000).set_index("keep_ratio")
    assert table.loc[0.5, "broken"] == 0 and table.loc[0.5, "uniform"] == pytest.approx(4 / 6, abs=0.03)
    assert table.loc[0.75, "broken"] == 0.5 and table.loc[0.75, "uniform"] == pytest.approx(0.625, abs=0.03)


def test_uniform_deletion_matches_what_a_chain_kept_whole_words_of():
    """At keep 0.75 the chain "12 50" (words " 12", " 50") loses the first token of " 12" and keeps the
    word whole: 4 of 4 tokens kept. Uniform deletion of as many tokens keeps all 4 too: nothing breaks,
    and every category survives as uniform deletion predicts."""
    one = pd.DataFrame({"example_id": ["c"] * 4, "position": range(4), "token_text": [" 1", "2", " 5", "0"],
                        "deleted_step": pd.array([1, 2, None, None], dtype="Int64"), "unit": [0, 0, 1, 1],
                        "category": ["SYMBOLIC_MATH", "SYMBOLIC_MATH", "VERBAL_MATH", "VERBAL_MATH"]})
    table = broken_numbers(one, {"c": "12 50"}, ratios=[0.75], draws=50).set_index("keep_ratio")
    assert table.loc[0.75, "broken"] == 0 and table.loc[0.75, "uniform"] == 0
    survival = category_survival(one, ratios=[0.75, 0.5]).set_index(["category", "keep_ratio"])
    assert (survival.loc[(slice(None), 0.75), ["survival", "uniform", "ratio"]] == 1).all(axis=None)
    assert survival.loc[("SYMBOLIC_MATH", 0.5), "ratio"] == 0 and survival.loc[("VERBAL_MATH", 0.5), "ratio"] == 2


def test_normalised_objective_by_hand():
    def run(trajectories):
        return pd.DataFrame({"example_id": list(trajectories), "n_reasoning": 4,
                             "objective_trajectory": list(trajectories.values())})
    exact = run({"a": [-1.0, -1.1, -1.2, -1.5, -2.0], "b": [-1.0, -1.0, -1.0, -1.0, -1.0]})
    random = run({"a": [-1.0, -1.5, -2.2, -2.5, -3.0], "b": [-1.0, -1.0, -1.0, -1.0, -1.0]})
    method = run({"a": [-1.0, -1.3, -1.7, -2.5], "b": [-1.0, -2.0, -2.0, -2.0, -2.0]})  # a stopped at keep 0.25
    table = normalised_objective(method, exact, random).set_index("example_id")
    # keep 0.75 deletes 1 token: (-1.3 + 1.5) / (-1.1 + 1.5) = 0.5; keep 0.5: (-1.7 + 2.2) / (-1.2 + 2.2) = 0.5
    assert table.loc["a", "normalised@0.75"] == pytest.approx(0.5)
    assert table.loc["a", "normalised@0.5"] == pytest.approx(0.5)
    assert table.loc["a", "normalised@0.25"] == pytest.approx(0.0)  # (-2.5 + 2.5) / (-1.5 + 2.5)
    assert table.loc["b"].isna().all()  # exact and random tie: undefined, not infinite
    method_a_short = run({"a": [-1.0, -1.3]})
    assert np.isnan(normalised_objective(method_a_short, exact, random).set_index("example_id").loc["a", "normalised@0.5"])


def test_order_agreement_by_hand():
    keys = {"example_id": ["a"] * 4, "position": [0, 1, 2, 3], "token_id": [5, 6, 7, 8]}
    first = pd.DataFrame({**keys, "deleted_step": pd.array([1, 2, 3, 4], dtype="Int64")})
    second = pd.DataFrame({**keys, "deleted_step": pd.array([2, 1, 3, 4], dtype="Int64")})
    row = order_agreement(first, second).iloc[0]
    assert row.spearman == pytest.approx(0.8) and row.same_first == 0
    assert row["agree@0.75"] == 0.5 and row["agree@0.5"] == 1.0 and row["agree@0.25"] == 1.0
    assert order_agreement(first, first).iloc[0].same_first == 4
    with pytest.raises(RunError, match="tokenise a differently"):
        order_agreement(first, second.assign(token_id=[5, 6, 7, 9]))


def test_analyze_writes_every_table_with_grouped_cv(full_run):
    tables = analyze(full_run["greedy"], show_progress=False)
    out = full_run["greedy"] / "analysis"
    for name in ("rank_regression", "rank_importance", "drop_regression", "category_survival", "category_rank",
                 "category_pairs", "survival_classifier", "category_classifier", "category_confusion", "broken_numbers"):
        assert (out / f"{name}.csv").exists(), name
    assert (out / "rank_predictions.parquet").exists()
    reg = tables["rank_regression"]
    assert {"attention", "sparsity", "baseline", "all", "attention L0", "attention L1"} <= set(reg.feature_set)
    assert reg[["spearman", "pearson", "r2"]].notna().all().all()
    assert (reg.example_spearman_ci_low <= reg.example_spearman_ci_high).all()
    surv = tables["category_survival"]
    assert sorted(surv.keep_ratio.unique()) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert ((surv.ratio_ci_low <= surv.ratio + 1e-9) & (surv.ratio <= surv.ratio_ci_high + 1e-9)).all()
    drops = tables["drop_regression"]
    assert set(drops.target) == {"drop", "post_objective"}
    assert drops[["pearson", "spearman", "r2"]].notna().all().all()
    assert tables["category_pairs"].p_bh.between(0, 1).all()
    assert set(headline(tables)) >= {"attention->rank spearman (ridge)", "ratio@0.5 SymbMath", "broken numbers@0.5",
                                     "attention->post-deletion objective pearson (best)"}




def test_post_deletion_objective_is_start_minus_drop(full_run):
    """A feature equal to start - drop predicts the post_objective target perfectly, the drop not."""
    from prunelens.analysis import drop_regression

    tokens = load_tokens(full_run["greedy"])
    examples = pd.read_parquet(full_run["greedy"] / "examples.parquet")
    start = examples.set_index("example_id").objective_trajectory.map(lambda t: float(t[0]))
    post = tokens.example_id.map(start) - tokens.drop_first.astype(float)
    frame = tokens[["example_id", "position", "drop_first"]].assign(**{"attn_answer.L0.H0": post})
    table = drop_regression(frame, ("ridge",), start)
    pearson = table[table.feature_set == "attention"].set_index("target").pearson
    assert pearson["post_objective"] > 0.999 > pearson["drop"]


def test_any_method_can_be_analysed(full_run):
    tables = analyze(full_run["random"], show_progress=False)
    assert "note" in tables["drop_regression"]  # random deletion records no first-step drops
    assert len(tables["category_survival"])






























