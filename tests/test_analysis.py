import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from prunelens.analysis import (analyze, broken_numbers, category_survival, headline, normalised_objective,
                                order_agreement)
from prunelens.categories import annotate_run
from prunelens.features import features_run
from prunelens.figures import make_figures
from prunelens.errors import RunError
from prunelens.ops import n_to_delete
from prunelens.pruning import prune_examples
from prunelens.schema import FeatureName, chains_at, feature_names, load_tokens, present_at, reaches
from prunelens.viewer import write_viewer


@pytest.fixture(scope="module")
def full_run(tiny_model, short_chains, tmp_path_factory):
    """A greedy run and a random run of 6 chains with features and categories (tiny model)."""
    root = tmp_path_factory.mktemp("analysis")
    runs = {}
    for method in ("greedy", "random"):
        out = root / method
        prune_examples(tiny_model, short_chains[:6], out, method=method, show_progress=False)
        features_run(tiny_model, out, show_progress=False)
        annotate_run(out)
        runs[method] = out
    return runs


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


def test_cross_predict_cannot_learn_an_example_it_holds_out():
    """A feature that only memorises which example a row belongs to predicts that example's target in
    sample, but says nothing about held-out examples: out-of-fold predictions must not follow it."""
    from sklearn.linear_model import LinearRegression

    from prunelens.modelling import cross_predict

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 10)  # 30 examples of 10 tokens
    target = rng.normal(size=30)[groups]  # each example's own value
    memorise = np.eye(30)[groups]  # one-hot of the example: perfect in sample
    assert np.corrcoef(LinearRegression().fit(memorise, target).predict(memorise), target)[0, 1] > 0.99
    held_out = cross_predict(LinearRegression, memorise, target, groups)
    assert abs(np.corrcoef(held_out, target)[0, 1]) < 0.3


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


def test_cli_agree_between_runs(full_run, tmp_path):
    from prunelens.cli import main

    assert main(["agree", str(full_run["greedy"]), str(full_run["greedy"]), "--out", str(tmp_path / "same.csv")]) == 0
    same = pd.read_csv(tmp_path / "same.csv")
    assert len(same) == 6 and np.allclose(same.spearman, 1) and (same.same_first == same.n_reasoning).all()
    assert main(["agree", str(full_run["greedy"]), str(full_run["random"]), "--out", str(tmp_path / "rnd.csv")]) == 0
    assert pd.read_csv(tmp_path / "rnd.csv").spearman.mean() < 0.9


def test_figures_and_viewer(full_run, tmp_path):
    analyze(full_run["greedy"], show_progress=False)
    shutil.rmtree(full_run["random"] / "analysis", ignore_errors=True)
    unanalysed = {p.name for p in make_figures(full_run["greedy"], tmp_path / "a", compare=[full_run["random"]])}
    assert "category_survival_by_method.png" not in unanalysed  # a compared run without analysis adds no bars
    analyze(full_run["random"], show_progress=False)
    paths = make_figures(full_run["greedy"], tmp_path / "figs", compare=[full_run["random"]])
    names = {p.name for p in paths}
    for stem in ("trajectory", "position_vs_step", "category_survival", "rank_by_category", "example_chain",
                 "attention_heatmap", "predicted_vs_actual", "category_survival_by_method"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert all(p.stat().st_size > 1000 for p in paths)
    page = write_viewer(full_run["greedy"], tmp_path / "view.html").read_text()
    assert "http" not in page.replace("http-equiv", "")  # no network: nothing is fetched
    assert page.count('"id": "gsm8k-') == 6


def chromium_driver():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium and chromium-driver (make test installs them)")
        pytest.skip("chromium and chromedriver are not installed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1200,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def test_viewer_in_headless_chromium(full_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = write_viewer(full_run["greedy"], tmp_path / "view.html")
    tokens = pd.read_parquet(full_run["greedy"] / "tokens.parquet")
    driver = chromium_driver()
    try:
        driver.get(page.as_uri())
        assert driver.find_elements(By.CSS_SELECTOR, ".tok.deleted") == []
        Select(driver.find_element(By.ID, "example")).select_by_index(2)
        ex_id = driver.find_element(By.ID, "example").get_attribute("value")
        rows = tokens[tokens.example_id == tokens.example_id.unique()[int(ex_id)]]
        assert len(driver.find_elements(By.CSS_SELECTOR, ".tok")) == len(rows)
        slider = driver.find_element(By.ID, "step")
        driver.execute_script("arguments[0].value = 5; arguments[0].dispatchEvent(new Event('input'));", slider)
        deleted = driver.find_elements(By.CSS_SELECTOR, ".tok.deleted")
        expected = set(rows.position[rows.deleted_step <= 5])
        assert {int(e.get_attribute("data-position")) for e in deleted} == expected and len(expected) == 5
        assert driver.find_element(By.ID, "status").text.startswith(f"step 5 / {len(rows)}: {len(rows) - 5} of")
        title = driver.find_elements(By.CSS_SELECTOR, ".tok")[0].get_attribute("title")
        assert "deleted at step" in title and "attn_answer.mean" in title
        assert driver.save_screenshot(str(tmp_path / "viewer.png"))
        assert (tmp_path / "viewer.png").stat().st_size > 5000
    finally:
        driver.quit()


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "prunelens.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_cli_help_for_every_subcommand():
    for command in ("info", "prune", "features", "annotate", "analyze", "agree", "figures", "view", "demo", "merge"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage: prunelens" in result.stdout, command


def test_cli_info_and_one_line_errors(tmp_path):
    info = run_cli("info")
    assert info.returncode == 0
    fields = dict(line.split(None, 1) for line in info.stdout.strip().splitlines())
    assert (fields["layers"], fields["heads"], fields["d_model"]) == ("30", "9", "576")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q"}\n')
    result = run_cli("prune", "--data", f"jsonl:{bad}", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        f"prunelens prune: error: {bad}, line 1: missing field 'reasoning'"
    missing = run_cli("analyze", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "run `prunelens prune` first" in missing.stderr
    assert "Traceback" not in result.stderr + missing.stderr


def test_example_chain_figure_keeps_step_numbers_apart_and_shows_white_space():
    import matplotlib.pyplot as plt

    from prunelens.figures import example_figure

    texts = ["3", "0", "1", "6", " ", "\n", "apples"]
    tokens = pd.DataFrame({"example_id": "e", "position": range(7), "token_text": texts,
                           "category": ["SymbMath"] * 4 + ["Grammar"] * 2 + ["EntName"],
                           "deleted_step": pd.array([30, 16, 11, 39, 2, None, 7], dtype="Int64")})
    ax = example_figure(tokens, "e").axes[0]
    labels = sorted(((t.get_position(), t.get_text()) for t in ax.texts if t.get_fontsize() < 9 and t.get_text()),
                    key=lambda item: (item[0][1], item[0][0]))
    for ((x0, y0), text0), ((x1, y1), _) in zip(labels, labels[1:]):
        assert y0 != y1 or x1 - x0 >= len(text0) + 1  # each number has its own cell and a gap
    shown = [t.get_text() for t in ax.texts if t.get_fontsize() >= 9]
    assert "␣" in shown and "⏎" in shown  # white space is visible, not an empty box
    plt.close("all")


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


def test_categories_record_their_annotator(full_run):
    assert set(pd.read_parquet(full_run["greedy"] / "categories.parquet").annotator) == {"rules-v3"}


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
