"""Paper figures of a run (PNG and PDF), in the category colours of docs/categories.md.

``make_figures(RUN, OUT, compare=[RUN2, ...])`` reads the run's tables and ``RUN/analysis/`` (made
by ``analyze``) and writes one file pair per figure; compared runs add their trajectories and,
where they have been annotated and analysed too, their category survival.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .errors import RunError  # noqa: E402
from .modelling import spearman  # noqa: E402
from .schema import (ANALYSIS, COLOURS, DISPLAY, EXAMPLES, HEADLINE_FEATURE, HEADLINE_KEEP, LABELS, colour,  # noqa: E402
                     feature_names, load_tokens, read_table)


def save_figure(fig, out: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.pdf``; the PDF carries no creation date, so a rerun rewrites the same bytes."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight",
                    metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    plt.close(fig)
    return paths


def _analysis(run: Path, name: str, suffix: str = "csv") -> pd.DataFrame:
    path = run / ANALYSIS / f"{name}.{suffix}"
    if not path.exists():
        raise RunError(f"{path} does not exist: run `prunelens analyze {run}` first")
    return pd.read_csv(path) if suffix == "csv" else pd.read_parquet(path)


MIN_BAND_TOKENS = 20  # a category with fewer tokens gets no interval band (it would fill the axis)


def survival_figure(survival: pd.DataFrame, title: str):
    """Survival of each category against keep ratio, with the uniform-deletion line; ratio panel.

    Intervals are drawn for categories of at least ``MIN_BAND_TOKENS`` tokens (a few tokens give
    intervals that say nothing and would stretch the axis); a category with no tokens is named."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    top = 1.0
    for category in [c for c in LABELS if c in set(survival.category)]:
        rows = survival[survival.category == category].sort_values("keep_ratio")
        n = int(rows.tokens.iloc[0])
        c, label = colour(category), f"{DISPLAY[category]} (n={n})"
        left.plot(rows.keep_ratio, rows.survival, "o-", color=c, label=label)
        few = n < MIN_BAND_TOKENS
        right.plot(rows.keep_ratio, rows.ratio, "o:" if few else "o-", color=c,
                   label=label + (", too few tokens for an interval" if few else ""))
        if not few:
            right.fill_between(rows.keep_ratio, rows.ratio_ci_low, rows.ratio_ci_high, color=c, alpha=0.15)
            top = max(top, float(np.nanmax(rows.ratio_ci_high)))
        top = max(top, float(np.nanmax(rows.ratio)))
    uniform = survival.groupby("keep_ratio").uniform.mean()
    left.plot(uniform.index, uniform.values, "k--", label="uniform deletion")
    right.axhline(1, color="k", ls="--", lw=1, label="as uniform deletion")
    right.set_ylim(0, min(top * 1.05, 3.0))
    left.set(xlabel="keep ratio", ylabel="share of category still present", title=f"Category survival: {title}")
    right.set(xlabel="keep ratio", ylabel="survival / uniform (shaded: 95% CI)",
              title="Against uniform deletion (above 1: kept more)")
    for ax in (left, right):
        ax.invert_xaxis()
        ax.legend(fontsize=7)
    absent = [DISPLAY[c] for c in LABELS if c not in set(survival.category)]
    if absent:
        fig.text(0.5, -0.02, f"no tokens in this run: {', '.join(absent)}", ha="center", fontsize=8)
    return fig


def rank_figure(tokens: pd.DataFrame, title: str):
    """Normalised deletion rank by category (later = kept longer)."""
    frame = tokens.dropna(subset=["rank_norm", "category"])
    order = frame.groupby("category").rank_norm.mean().sort_values().index.tolist()
    fig, ax = plt.subplots(figsize=(7, 4))
    parts = ax.boxplot([frame.loc[frame.category == c, "rank_norm"] for c in order], patch_artist=True,
                       tick_labels=[DISPLAY[c] for c in order], showmeans=True)
    for patch, c in zip(parts["boxes"], order):
        patch.set_facecolor(colour(c))
    ax.set(ylabel="deletion step / N (1 = deleted last)", title=f"Deletion rank by category: {title}")
    return fig


def heatmap_figure(tokens: pd.DataFrame, title: str):
    """Spearman correlation of each head's attention from the answer with the deletion rank."""
    frame = tokens.dropna(subset=["rank_norm"])
    names = [n for n in feature_names(frame.columns)
             if n.family == "attn_answer" and n.head is not None and n.keep is None]
    layers, heads = sorted({n.layer for n in names}), sorted({n.head for n in names})
    grid = np.full((len(layers), len(heads)), np.nan)
    y = frame.rank_norm.to_numpy(float)
    for name in names:
        grid[layers.index(name.layer), heads.index(name.head)] = spearman(frame[str(name)].to_numpy(float), y)
    fig, ax = plt.subplots(figsize=(1 + 0.45 * len(heads), 1 + 0.22 * len(layers)))
    limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set(xticks=range(len(heads)), xticklabels=heads, yticks=range(len(layers)), yticklabels=layers,
           xlabel="head", ylabel="layer", title=f"Spearman(attention from answer, rank)\n{title}")
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("Spearman: attention from the answer vs deletion rank\n(> 0: more attention, deleted later)", fontsize=8)
    return fig


def predicted_figure(predictions: pd.DataFrame, title: str):
    """Cross-validated predicted rank against actual rank."""
    column = next(c for c in ("all/boosting", "attention/boosting", "all/ridge", "attention/ridge") if c in predictions)
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.hexbin(predictions.rank_norm, predictions[column], gridsize=30, cmap="Blues", mincnt=1)
    rho = spearman(predictions.rank_norm.to_numpy(float), predictions[column].to_numpy(float))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="actual rank (deletion step / N)", ylabel=f"predicted ({column}, grouped CV)",
           title=f"Predicted vs actual rank: {title}\nSpearman {rho:.2f}")
    return fig


def trajectory_figure(runs: Sequence[tuple[str, pd.DataFrame]]):
    """Objective after each deletion against the fraction deleted, mean and spread over examples."""
    grid = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, examples in runs:
        curves = []
        for traj, n in zip(examples.objective_trajectory, examples.n_reasoning):
            traj = np.asarray(traj, dtype=float)
            deleted = np.arange(len(traj)) / n  # fraction deleted after each step; keep ratios stop early
            scored = np.isfinite(traj)  # grid trajectories are NaN between their points
            curves.append(np.where(grid <= deleted[-1] + 1e-9, np.interp(grid, deleted[scored], traj[scored]), np.nan))
        curves = np.array(curves)
        mean, sd = np.nanmean(curves, 0), np.nanstd(curves, 0)
        line = ax.plot(grid, mean, label=f"{label}: mean of {len(curves)} chains")[0]
        ax.fill_between(grid, mean - sd, mean + sd, color=line.get_color(), alpha=0.12)
    ax.fill_between([], [], [], color="grey", alpha=0.2, label="shaded: \u00b11 SD over chains")
    ax.set(xlabel="fraction of reasoning tokens deleted", ylabel="objective (mean log-prob)",
           title="Objective trajectory")
    ax.legend(fontsize=8)
    return fig


def methods_figure(runs: Sequence[tuple[str, pd.DataFrame]], keep_ratio: float = HEADLINE_KEEP, by: str = "method"):
    """Survival / uniform per category at one keep ratio, one bar per method (or other ``by``), with 95% intervals."""
    categories = [c for c in LABELS if any(c in set(s.category) for _, s in runs)]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(1.3 * len(categories) + 2, 4.2))
    for k, (label, survival) in enumerate(runs):
        rows = survival[np.isclose(survival.keep_ratio, keep_ratio)].set_index("category").reindex(categories)
        x = np.arange(len(categories)) + (k - (len(runs) - 1) / 2) * width
        err = np.vstack([rows.ratio - rows.ratio_ci_low, rows.ratio_ci_high - rows.ratio])
        ax.bar(x, rows.ratio, width, yerr=err, capsize=2, label=label)
    ax.axhline(1, color="k", ls="--", lw=1)
    ax.set_xticks(np.arange(len(categories)), [DISPLAY[c] for c in categories])
    ax.set(ylabel="survival / uniform (95% CI)", title=f"Category survival at keep {keep_ratio} by {by}")
    ax.legend(fontsize=8)
    return fig


def position_figure(tokens: pd.DataFrame, title: str):
    """Where in the chain tokens sit against when they are deleted."""
    frame = tokens.dropna(subset=["rank_norm"])
    position = frame.position / frame.groupby("example_id").position.transform("size")
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.hexbin(position, frame.rank_norm, gridsize=25, cmap="Purples", mincnt=1)
    rho = spearman(position.to_numpy(float), frame.rank_norm.to_numpy(float))
    ax.set(xlabel="position in chain / N", ylabel="deletion step / N", title=f"Position vs deletion: {title}\nSpearman {rho:.2f}")
    return fig


def example_figure(tokens: pd.DataFrame, example_id: str, width: int = 70):
    """One chain, tokens coloured by category, each with its deletion step (blank: never deleted)."""
    rows = tokens[tokens.example_id == example_id].sort_values("position")
    lines, line, used = [], [], 0
    for row in rows.itertuples():
        text = row.token_text.replace("\n", "⏎")
        if not text.strip():  # white space alone would be an empty box
            text = text.replace(" ", "␣").replace("\t", "⇥") or "∅"
        label = "" if pd.isna(row.deleted_step) else str(int(row.deleted_step))
        cell = max(len(text), len(label)) + 1  # room for the step number and a gap: numbers never run together
        if used + cell > width and line:
            lines.append(line)
            line, used = [], 0
        line.append((used, text, row.category, label))
        used += cell
        if "\n" in row.token_text:
            lines.append(line)
            line, used = [], 0
    lines.append(line)
    fig, ax = plt.subplots(figsize=(width * 0.13, 0.55 * len(lines) + 0.8))
    ax.set(xlim=(0, width), ylim=(len(lines), -0.6))
    ax.axis("off")
    for k, line in enumerate(lines):
        for x, text, category, label in line:
            ax.text(x + 0.05, k, text, family="monospace", fontsize=9, va="center",
                    bbox=dict(boxstyle="square,pad=0.1", fc=np.array(COLOURS.get(category, (220, 220, 220))) / 255, ec="none"))
            ax.text(x + 0.05, k + 0.33, label, family="monospace", fontsize=5.5, color="0.3")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour(c)) for c in LABELS]
    ax.legend(handles, [DISPLAY[c] for c in LABELS], ncol=6, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.12), frameon=False)
    ax.set_title(textwrap.shorten(f"{example_id}: tokens by category, small numbers = deletion step", 100), pad=22)
    return fig


def _method(examples: pd.DataFrame, run: Path) -> str:
    """A run's name in a legend: its method, and the directory where the method alone is not its name."""
    method = examples.method.iloc[0]
    return method if run.name == method else f"{method} ({run.name})"


def _chains(examples: pd.DataFrame) -> str:
    return f"{examples.method.iloc[0]} ({len(examples)} chains)"


def make_figures(run: str | Path, out: str | Path, compare: Sequence[str | Path] = ()) -> list[Path]:
    """Write every figure of ``run`` (and the trajectories of ``compare``) into ``out``."""
    run, out = Path(run), Path(out)
    tokens = load_tokens(run)
    examples = read_table(run, EXAMPLES)
    title = f"{examples.model.iloc[0]}, {examples.method.iloc[0]}, {len(examples)} chains"
    paths: list[Path] = []
    trajectories = [(_method(examples, run), examples)]
    survivals = []
    for other in map(Path, compare):
        ex = read_table(other, EXAMPLES)
        trajectories.append((_method(ex, other), ex))
        if (other / ANALYSIS / "category_survival.csv").exists():
            survivals.append((_chains(ex), _analysis(other, "category_survival")))
    paths += save_figure(trajectory_figure(trajectories), out, "trajectory")
    paths += save_figure(position_figure(tokens, title), out, "position_vs_step")
    if "category" in tokens:
        survival = _analysis(run, "category_survival")
        paths += save_figure(survival_figure(survival, title), out, "category_survival")
        if survivals:
            paths += save_figure(methods_figure([(_chains(examples), survival)] + survivals), out,
                           "category_survival_by_method")
        paths += save_figure(rank_figure(tokens, title), out, "rank_by_category")
        paths += save_figure(example_figure(tokens, examples.example_id.iloc[0]), out, "example_chain")
    if HEADLINE_FEATURE in tokens:
        paths += save_figure(heatmap_figure(tokens, title), out, "attention_heatmap")
        paths += save_figure(predicted_figure(_analysis(run, "rank_predictions", "parquet"), title), out, "predicted_vs_actual")
    return paths


def distill_figure(results: pd.DataFrame):
    """Student accuracy (Wilson 95% interval) against mean reasoning tokens of its training chains:
    one panel per eval set, one colour per method, one point per keep ratio and seed, and a line
    through each method's mean over seeds from keep ratio to keep ratio."""
    sets = list(dict.fromkeys(results.eval_set))
    methods = list(dict.fromkeys(results.method))
    palette = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    fig, axes = plt.subplots(1, len(sets), figsize=(6.2 * len(sets), 4.4), squeeze=False)
    for ax, eval_set in zip(axes[0], sets):
        rows = results[results.eval_set == eval_set]
        for method, group in rows.groupby("method", sort=False):
            colour = palette(methods.index(method) % palette.N)
            ax.errorbar(group.mean_train_reasoning_tokens, group.accuracy,
                        yerr=[group.accuracy - group.ci_low, group.ci_high - group.accuracy],
                        fmt="o", ms=4, capsize=2, alpha=0.6, color=colour, label=method)
            means = group.groupby("keep_ratio")[["mean_train_reasoning_tokens", "accuracy"]].mean()
            if len(means) > 1:
                means = means.sort_values("mean_train_reasoning_tokens")
                ax.plot(means.mean_train_reasoning_tokens, means.accuracy, "-", color=colour, lw=1.2)
        ax.set(xlabel="mean reasoning tokens of the training chains", ylabel="accuracy (95% Wilson interval)",
               title=f"Students on {eval_set}")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig
