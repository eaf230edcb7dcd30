"""Figures of a run (``prunelens.figures``)."""

import shutil

import pandas as pd
import pytest

from prunelens.analysis import analyze
from prunelens.figures import make_figures, save_figure
from prunelens.viewer import write_viewer


@pytest.mark.slow  # end to end: the fast lane has its parts
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


def test_a_saved_figure_rewrites_the_same_bytes(tmp_path):
    import matplotlib.pyplot as plt

    def draw() -> list:
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return [p.read_bytes() for p in save_figure(fig, tmp_path, "line")]

    first = draw()
    assert b"/CreationDate" not in first[1]  # a date would make every rerun a diff in git
    assert draw() == first


def test_distill_figure_colours_by_method_and_joins_seed_means_across_keep_ratios():
    from prunelens.figures import distill_figure

    rows = [("base", None, None, 0.0, 0.02), ("full", 1.0, 0, 40.0, 0.40), ("full", 1.0, 1, 40.0, 0.44),
            ("greedy", 0.8, 0, 32.0, 0.30), ("greedy", 0.8, 1, 32.0, 0.20), ("greedy", 0.5, 0, 20.0, 0.10),
            ("truncate", 0.5, 0, 20.0, 0.12), ("truncate", 0.8, 0, 32.0, 0.24)]
    results = pd.DataFrame(rows, columns=["method", "keep_ratio", "seed", "mean_train_reasoning_tokens", "accuracy"])
    results["eval_set"], results["ci_low"], results["ci_high"] = "in", results.accuracy - 0.01, results.accuracy + 0.01
    ax = distill_figure(results).axes[0]
    # one legend entry per method, not per keep ratio; a line only where a method has two keep ratios
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "full", "greedy", "truncate"]
    lines = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines if line.get_linestyle() == "-"]
    assert lines == [([20.0, 32.0], pytest.approx([0.10, 0.25])), ([20.0, 32.0], pytest.approx([0.12, 0.24]))]
    colours = {h.get_label(): h.lines[0].get_color() for h in ax.get_legend_handles_labels()[0]}
    assert len(set(colours.values())) == 4


def test_distill_figure_gives_each_of_more_than_ten_methods_its_own_colour():
    from prunelens.figures import distill_figure

    results = pd.DataFrame({"method": [f"m{i}" for i in range(12)], "keep_ratio": 0.8, "seed": 0, "eval_set": "in",
                            "mean_train_reasoning_tokens": 30.0, "accuracy": 0.2, "ci_low": 0.1, "ci_high": 0.3})
    handles = distill_figure(results).axes[0].get_legend_handles_labels()[0]
    assert len({tuple(h.lines[0].get_color()) for h in handles}) == 12
