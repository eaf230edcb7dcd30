"""Does attention predict pruning order, and which categories survive? Tidy tables from a run.

``analyze(RUN)`` joins ``tokens``, ``features`` and ``categories`` on ``(example_id, position)`` and
writes CSV tables under ``RUN/analysis/``. Every model is cross-validated by example (GroupKFold):
no example is in both training and test folds. Any method's run works, so greedy can be set
beside the baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .categories import LABELS
from .numbers import broken_number_share, problem_texts
from .ops import n_to_delete, progress_bar
from .schema import (ANALYSIS, DYNAMIC, EXAMPLES, HEADLINE_FEATURE, FeatureName, feature_names, load_tokens, present_at,
                     kept_text, reaches, read_table)
from .store import natural_key, write_table, write_text

KEEP_RATIOS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
HEADLINE_KEEP = 0.5  # the keep ratio runs are summarised and compared at
COMPARE_KEEPS = (0.75, 0.5, 0.25)  # keep ratios of agreement and of the normalised objective
PUBLISHED_PEARSON = 0.88  # arXiv 2601.03066: attention features -> post-deletion likelihood
BOOTSTRAP = 1000


def feature_sets(columns: Sequence[str]) -> dict[str, list[str]]:
    """Named groups of feature columns: attention, each layer's attention, sparsity, baseline, all.

    Features recomputed on pruned chains (``@ratio``) are left out: they are missing for deleted tokens.
    """
    names = [n for n in feature_names(columns) if n.keep is None]
    attention = [str(n) for n in names if n.kind == "attention"]
    sparsity = [str(n) for n in names if n.kind == "sparsity"]
    baseline = [str(n) for n in names if n.kind == "plain"]
    sets = {"attention": attention, "sparsity": sparsity, "baseline": baseline,
            "all": attention + sparsity + baseline}
    for layer in sorted({n.layer for n in names if n.kind == "attention" and n.layer is not None}):
        sets[f"attention L{layer}"] = [str(n) for n in names if n.kind == "attention" and n.layer == layer]
    return {name: cols for name, cols in sets.items() if cols}


def estimators(kind: str):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Boosting sees 20% of the (hundreds of) features per split and stops early: minutes, not hours.
    boost = dict(max_iter=100, learning_rate=0.1, max_features=0.2, early_stopping=True, random_state=0)
    if kind == "regression":
        from sklearn.neural_network import MLPRegressor

        # mlp: the published predictor's shape, a 2-layer MLP on attention features
        return {"ridge": lambda: make_pipeline(StandardScaler(), Ridge(alpha=10.0)),
                "boosting": lambda: HistGradientBoostingRegressor(**boost),
                "mlp": lambda: make_pipeline(StandardScaler(), MLPRegressor(
                    hidden_layer_sizes=(256, 256), alpha=1e-3, early_stopping=True, max_iter=300, random_state=0))}
    return {"logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            "boosting": lambda: HistGradientBoostingClassifier(**boost)}


def _folds(groups: np.ndarray, n_splits: int = 5):
    from sklearn.model_selection import GroupKFold

    n = len(np.unique(groups))
    if n < 2:
        raise ValueError("cross-validation by example needs at least 2 examples in the run")
    return list(GroupKFold(n_splits=min(n_splits, n)).split(np.zeros(len(groups)), groups=groups))


def cross_predict(make_model, x: np.ndarray, y: np.ndarray, groups: np.ndarray, proba: bool = False) -> np.ndarray:
    """Out-of-fold predictions, folds grouped by example."""
    out = np.zeros(len(y), dtype=float)
    for train, test in _folds(groups):
        model = make_model().fit(x[train], y[train])
        out[test] = model.predict_proba(x[test])[:, 1] if proba else model.predict(x[test])
    return out


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values``."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(BOOTSTRAP, len(values)), replace=True).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _defined(a: np.ndarray, b: np.ndarray) -> bool:
    """Is a correlation of ``a`` and ``b`` defined: 3+ values, no NaN, neither side constant?"""
    return len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0  # ptp is NaN, so not > 0, with a NaN


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation, NaN (without a warning) where it is not defined."""
    if not _defined(a, b):
        return float("nan")
    return float(stats.spearmanr(a, b)[0])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if not _defined(a, b):
        return float("nan")
    return float(stats.pearsonr(a, b)[0])


def per_example_spearman(frame: pd.DataFrame, predicted: np.ndarray, target: str) -> np.ndarray:
    values = frame[target].to_numpy(float)
    return np.array([_spearman(values[idx], predicted[idx]) for idx in frame.groupby("example_id").indices.values()])


def rank_regression(tokens: pd.DataFrame, models: Sequence[str] = ("ridge", "boosting"),
                    layer_models: Sequence[str] = ("ridge",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict ``rank_norm`` from each feature set; also return the out-of-fold predictions."""
    frame = tokens.dropna(subset=["rank_norm"]).reset_index(drop=True)
    y, groups = frame["rank_norm"].to_numpy(float), frame["example_id"].to_numpy()
    rows, predictions = [], frame[["example_id", "position", "rank_norm"]].copy()
    for name, cols in feature_sets(frame.columns).items():
        x = frame[cols].to_numpy(float)
        for model_name in (layer_models if name.startswith("attention L") else models):
            pred = cross_predict(estimators("regression")[model_name], x, y, groups)
            per_example = per_example_spearman(frame, pred, "rank_norm")
            low, high = bootstrap_ci(per_example)
            rows.append({"feature_set": name, "model": model_name, "n_features": len(cols),
                         "spearman": _spearman(y, pred), "pearson": _pearson(y, pred),
                         "r2": 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2),
                         "example_spearman_mean": np.nanmean(per_example) if np.isfinite(per_example).any() else np.nan,
                         "example_spearman_ci_low": low, "example_spearman_ci_high": high})
            if name in ("attention", "all"):
                predictions[f"{name}/{model_name}"] = pred
    return pd.DataFrame(rows), predictions


def permutation_importance(tokens: pd.DataFrame, repeats: int = 3, seed: int = 0) -> pd.DataFrame:
    """Drop in held-out Spearman when a family's (or a layer's) columns are shuffled together."""
    frame = tokens.dropna(subset=["rank_norm"]).reset_index(drop=True)
    cols = feature_sets(frame.columns)["all"]
    x, y, groups = frame[cols].to_numpy(float), frame["rank_norm"].to_numpy(float), frame["example_id"].to_numpy()
    names = [FeatureName.parse(c) for c in cols]
    families = ["baseline" if n.kind == "plain" else n.family for n in names]
    blocks = {f"family {f}": [i for i, g in enumerate(families) if g == f] for f in sorted(set(families))}
    blocks.update({f"layer {l}": [i for i, n in enumerate(names) if n.layer == l]
                   for l in sorted({n.layer for n in names if n.layer is not None})})
    rng = np.random.default_rng(seed)
    drops = {name: [] for name in blocks}
    for train, test in _folds(groups):
        model = estimators("regression")["ridge"]().fit(x[train], y[train])
        base = _spearman(y[test], model.predict(x[test]))
        for name, idx in blocks.items():
            for _ in range(repeats):
                shuffled = x[test].copy()
                shuffled[:, idx] = shuffled[rng.permutation(len(test))][:, idx]
                drops[name].append(base - _spearman(y[test], model.predict(shuffled)))
    return pd.DataFrame([{"block": name, "kind": name.split()[0], "spearman_drop": float(np.mean(v)),
                          "spearman_drop_sd": float(np.std(v))} for name, v in drops.items()])


def drop_regression(tokens: pd.DataFrame, models: Sequence[str] = ("ridge", "boosting"),
                    start: pd.Series | None = None) -> pd.DataFrame:
    """Predict, from attention (and all) features, what deleting each token alone at step 1 does.

    Target ``drop``: the objective drop, which varies within a chain only. Target
    ``post_objective``: the objective after the deletion (``start``, the objective of each intact
    chain indexed by example_id, minus the drop), which also varies between chains, as a
    post-deletion likelihood does: its Pearson r is the one to set beside the published 0.88.
    """
    if "drop_first" not in tokens or tokens["drop_first"].isna().all():
        return pd.DataFrame([{"note": "no first-step drops in this run (only greedy methods record them)"}])
    frame = tokens.dropna(subset=["drop_first"]).reset_index(drop=True)
    groups = frame["example_id"].to_numpy()
    targets = {"drop": frame["drop_first"].to_numpy(float)}
    if start is not None:
        targets["post_objective"] = frame["example_id"].map(start).to_numpy(float) - targets["drop"]
    rows = []
    sets = feature_sets(frame.columns)
    for target, y in targets.items():
        for name in ("attention", "all"):
            cols = sets.get(name)
            if not cols:
                continue
            for model_name in models:
                pred = cross_predict(estimators("regression")[model_name], frame[cols].to_numpy(float), y, groups)
                rows.append({"target": target, "feature_set": name, "model": model_name, "pearson": _pearson(y, pred),
                             "spearman": _spearman(y, pred),
                             "r2": 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2),
                             "published_pearson": PUBLISHED_PEARSON})
    return pd.DataFrame(rows)


def dynamic_regression(dynamic: pd.DataFrame, models: Sequence[str] = ("ridge", "boosting", "mlp")) -> pd.DataFrame:
    """Predict each candidate's post-deletion objective (and its drop) at every keep ratio of a
    ``dynamic`` table from the attention features of the current, already pruned chain.

    Out of fold, folds grouped by chain. Pearson r ``pooled`` over all keep ratios and within each
    (``keep_ratio``), and ``within_chain``: the mean r within one chain at one keep ratio (what
    ranking needs: between-chain differences in likelihood do not help choose a deletion).
    """
    frame = dynamic.dropna(subset=["post_objective"]).reset_index(drop=True)
    cols = feature_sets(frame.columns).get("attention")
    if not cols:
        raise ValueError("the dynamic table has no attention features")
    x, groups = frame[cols].to_numpy(float), frame["example_id"].to_numpy()
    cells = list(frame.groupby(["example_id", "keep_ratio"]).indices.values())
    rows = []
    for target in ("post_objective", "drop"):
        y = frame[target].to_numpy(float)
        for name in models:
            pred = cross_predict(estimators("regression")[name], x, y, groups)
            within = np.array([_pearson(y[idx], pred[idx]) for idx in cells])
            parts = [("pooled", np.arange(len(y)))] + [(f"{k:g}", idx) for k, idx in frame.groupby("keep_ratio").indices.items()]
            for keep, idx in parts:
                rows.append({"target": target, "model": name, "keep_ratio": keep, "rows": len(idx),
                             "pearson": _pearson(y[idx], pred[idx]), "spearman": _spearman(y[idx], pred[idx]),
                             "within_chain_pearson": float(np.nanmean(within)) if keep == "pooled" else np.nan,
                             "published_pearson": PUBLISHED_PEARSON})
    return pd.DataFrame(rows)


def category_survival(tokens: pd.DataFrame, ratios: Sequence[float] = KEEP_RATIOS, seed: int = 0) -> pd.DataFrame:
    """Share of each category still present at each keep ratio, against uniform deletion."""
    rng = np.random.default_rng(seed)
    examples = tokens["example_id"].unique()
    index = {e: i for i, e in enumerate(examples)}
    rows = []
    for ratio in [r for r in ratios if reaches(tokens, r)]:
        frame = tokens.assign(present=present_at(tokens, ratio))
        # uniform deletion of as many tokens as the chain lost (a unit kept whole can keep a few more)
        frame["expected"] = frame.groupby("example_id")["present"].transform("mean")
        per = frame.groupby(["category", "example_id"]).agg(present=("present", "sum"), expected=("expected", "sum"),
                                                           count=("present", "size")).reset_index()
        for category in [c for c in LABELS if c in set(per.category)]:
            sub = per[per.category == category]
            ids = sub.example_id.map(index).to_numpy()
            mat = np.zeros((3, len(examples)))
            mat[:, ids] = sub[["present", "expected", "count"]].to_numpy().T
            draws = rng.integers(0, len(examples), size=(BOOTSTRAP, len(examples)))
            boot = mat[0][draws].sum(1) / np.maximum(mat[1][draws].sum(1), 1e-12)
            rows.append({"category": category, "keep_ratio": ratio, "tokens": int(mat[2].sum()),
                         "survival": mat[0].sum() / mat[2].sum(), "uniform": mat[1].sum() / mat[2].sum(),
                         "ratio": mat[0].sum() / mat[1].sum(),
                         "ratio_ci_low": np.nanpercentile(boot, 2.5), "ratio_ci_high": np.nanpercentile(boot, 97.5)})
    return pd.DataFrame(rows)


def broken_numbers(tokens: pd.DataFrame, said: dict[str, str], ratios: Sequence[float] = KEEP_RATIOS,
                   draws: int = 20, seed: int = 0) -> pd.DataFrame:
    """Share of the numbers the run's chains state at each keep ratio that their problems (``said``)
    never state (``numbers.broken_number_share``), beside uniform deletion of as many tokens as
    each chain lost (``draws`` random deletions per chain)."""
    rng = np.random.default_rng(seed)
    frame = tokens.sort_values(["example_id", "position"], kind="stable")
    chains = {e: g.token_text.astype(str).to_numpy() for e, g in frame.groupby("example_id", sort=False)}
    references = [said[e] for e in chains]
    rows = []
    for ratio in [r for r in ratios if reaches(frame, r)]:
        kept = kept_text(frame, ratio)
        texts = [kept.text.get(e, "") for e in chains]
        uniform = []
        for _ in range(draws):
            texts_u = []
            for e, text in chains.items():
                keep = np.sort(rng.permutation(len(text))[: kept.n_kept.get(e, 0)])
                texts_u.append("".join(text[keep]))
            uniform.append(broken_number_share(texts_u, references))
        rows.append({"keep_ratio": ratio, "broken": broken_number_share(texts, references),
                     "uniform": float(np.nanmean(uniform))})
    return pd.DataFrame(rows)


def order_agreement(tokens: pd.DataFrame, other: pd.DataFrame, ratios: Sequence[float] = COMPARE_KEEPS
                    ) -> pd.DataFrame:
    """How alike two runs' deletion orders are, per example they share (say greedy-fast against greedy).

    ``spearman``: between the deletion steps; ``same_first``: how many first deletions are
    identical; ``agree@R``: share of tokens both runs keep or both delete at keep ratio R.
    """
    keys = ["example_id", "position"]
    both = tokens[keys + ["token_id", "deleted_step"]].merge(
        other[keys + ["token_id", "deleted_step"]], on=keys, suffixes=("", "_other"), validate="one_to_one")
    if len(both) and (both.token_id != both.token_id_other).any():
        bad = both.loc[both.token_id != both.token_id_other, "example_id"].iloc[0]
        raise ValueError(f"the runs tokenise {bad} differently: compare runs of the same model and data")
    other_steps = both.assign(deleted_step=both.deleted_step_other)
    agree = {f"agree@{ratio:g}": (present_at(both, ratio) == present_at(other_steps, ratio)
                                  if reaches(both, ratio) and reaches(other_steps, ratio) else pd.Series(np.nan, both.index))
             for ratio in ratios}
    rows = []
    for example_id, idx in both.groupby("example_id", sort=False).indices.items():
        chain = both.iloc[idx].sort_values("position")
        a, b = (chain[c].astype("float").to_numpy() for c in ("deleted_step", "deleted_step_other"))
        order_a, order_b = (np.argsort(np.where(np.isnan(x), np.inf, x), kind="stable") for x in (a, b))
        done = int(min(np.sum(~np.isnan(a)), np.sum(~np.isnan(b))))
        same = next((k for k in range(done) if order_a[k] != order_b[k]), done)
        rows.append({"example_id": example_id, "n_reasoning": len(chain), "spearman": _spearman(a, b),
                     "same_first": same, **{name: float(flags.iloc[idx].mean()) for name, flags in agree.items()}})
    if not rows:
        raise ValueError("the runs share no example")
    return pd.DataFrame(rows)


def objective_at(examples: pd.DataFrame, ratio: float) -> pd.Series:
    """Each example's exact objective once ``ratio`` of its tokens are kept (NaN if the run stopped earlier)."""
    def at(row) -> float:
        k = n_to_delete(int(row.n_reasoning), ratio)
        trajectory = row.objective_trajectory
        return float(trajectory[k]) if k < len(trajectory) else np.nan
    return pd.Series([at(row) for row in examples.itertuples()], index=examples.example_id.to_numpy())


def normalised_objective(method: pd.DataFrame, exact: pd.DataFrame, random: pd.DataFrame,
                         ratios: Sequence[float] = COMPARE_KEEPS) -> pd.DataFrame:
    """(method - random) / (exact greedy - random) of the objective at each keep ratio, per shared example.

    1 is as good as exact greedy, 0 no better than random deletion; NaN where exact and random tie.
    Inputs are the three runs' ``examples`` tables.
    """
    shared = sorted(set(method.example_id) & set(exact.example_id) & set(random.example_id), key=natural_key)
    if not shared:
        raise ValueError("the runs share no example")
    frame = pd.DataFrame({"example_id": shared})
    for ratio in ratios:
        m, e, r = (objective_at(t, ratio).reindex(shared).to_numpy() for t in (method, exact, random))
        gap = e - r
        frame[f"normalised@{ratio:g}"] = np.where(np.abs(gap) > 1e-9, (m - r) / np.where(gap == 0, 1, gap), np.nan)
    return frame


def category_rank(tokens: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean normalised deletion rank per category; Kruskal-Wallis and pairwise Mann-Whitney (BH-corrected)."""
    frame = tokens.dropna(subset=["rank_norm", "category"])
    groups = {c: frame.loc[frame.category == c, "rank_norm"].to_numpy(float) for c in LABELS if (frame.category == c).any()}
    summary = pd.DataFrame([{"category": c, "tokens": len(v), "mean_rank_norm": v.mean(), "median_rank_norm": np.median(v),
                             "ci_low": bootstrap_ci(v)[0], "ci_high": bootstrap_ci(v)[1]} for c, v in groups.items()])
    if len(groups) > 1:
        h, p = stats.kruskal(*groups.values())
        summary["kruskal_h"], summary["kruskal_p"] = h, p
    pairs = []
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            u, p = stats.mannwhitneyu(groups[a], groups[b])
            pairs.append({"a": a, "b": b, "u": u, "p": p,
                          "effect_rank_biserial": 1 - 2 * u / (len(groups[a]) * len(groups[b]))})
    pairs = pd.DataFrame(pairs)
    if len(pairs):
        pairs["p_bh"] = stats.false_discovery_control(pairs["p"].to_numpy())
    return summary, pairs


def survival_classifier(tokens: pd.DataFrame, ratio: float = HEADLINE_KEEP,
                        models: Sequence[str] = ("logistic", "boosting")) -> pd.DataFrame:
    """AUC of telling kept from deleted tokens at ``ratio`` from each feature set."""
    from sklearn.metrics import roc_auc_score

    frame = tokens.reset_index(drop=True)
    if not reaches(frame, ratio):
        return pd.DataFrame([{"note": f"the run stopped before keep ratio {ratio:g}"}])
    y = present_at(frame, ratio).to_numpy(int)
    groups = frame["example_id"].to_numpy()
    rows = []
    for name, cols in feature_sets(frame.columns).items():
        if name.startswith("attention L"):
            continue
        for model_name in models:
            pred = cross_predict(estimators("classification")[model_name], frame[cols].to_numpy(float), y, groups, proba=True)
            rows.append({"feature_set": name, "model": model_name, "keep_ratio": ratio,
                         "kept_share": y.mean(), "auc": roc_auc_score(y, pred)})
    return pd.DataFrame(rows)


def category_classifier(tokens: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How well internal features (attention, sparsity) alone tell a token's category."""
    from sklearn.metrics import confusion_matrix, f1_score

    frame = tokens.dropna(subset=["category"]).reset_index(drop=True)
    sets = feature_sets(frame.columns)
    cols = sets.get("attention", []) + sets.get("sparsity", [])
    y, groups = frame["category"].to_numpy(), frame["example_id"].to_numpy()
    labels = [c for c in LABELS if c in set(y)]
    pred = np.empty(len(y), dtype=object)
    for train, test in _folds(groups):
        model = estimators("classification")["logistic"]().fit(frame.loc[train, cols].to_numpy(float), y[train])
        pred[test] = model.predict(frame.loc[test, cols].to_numpy(float))
    majority = pd.Series(y).value_counts().idxmax()
    scores = pd.DataFrame([{"features": "attention+sparsity", "model": "logistic",
                            "macro_f1": f1_score(y, pred, labels=labels, average="macro"),
                            "accuracy": float(np.mean(pred == y)),
                            "majority_accuracy": float(np.mean(y == majority))}])
    confusion = pd.DataFrame(confusion_matrix(y, pred, labels=labels), index=labels, columns=labels)
    return scores, confusion.rename_axis("gold").reset_index()


def analyze(run: str | Path, out: str | Path | None = None, show_progress: bool = True,
            linear_only: bool = False) -> dict[str, pd.DataFrame]:
    """Write every analysis table of ``run`` under ``out`` (default ``RUN/analysis``); return them.

    ``linear_only`` skips gradient boosting (ridge and logistic regression only): a quicker look.
    """
    tokens = load_tokens(run)
    has_features = HEADLINE_FEATURE in tokens
    has_categories = "category" in tokens
    if not (has_features or has_categories):
        raise ValueError(f"{run} has neither features nor categories: run `prunelens features` and `prunelens annotate`")
    dynamic = Path(run) / f"{DYNAMIC}.parquet"
    examples = read_table(run, EXAMPLES)
    start = examples.set_index("example_id").objective_trajectory.map(lambda t: float(t[0]))
    out = Path(out) if out else Path(run) / ANALYSIS
    jobs = [("broken_numbers", lambda: broken_numbers(tokens, problem_texts(examples)))]
    if has_features:
        regressors = ("ridge",) if linear_only else ("ridge", "boosting")
        classifiers = ("logistic",) if linear_only else ("logistic", "boosting")
        jobs += [("rank_regression", lambda: rank_regression(tokens, regressors)),
                 ("rank_importance", lambda: permutation_importance(tokens)),
                 ("drop_regression", lambda: drop_regression(tokens, regressors, start)),
                 ("survival_classifier", lambda: survival_classifier(tokens, models=classifiers))]
    if has_categories:
        jobs += [("category_survival", lambda: category_survival(tokens)),
                 ("category_rank", lambda: category_rank(tokens))]
    if has_features and has_categories:
        jobs.append(("category_classifier", lambda: category_classifier(tokens)))
    if dynamic.exists():
        models = ("ridge",) if linear_only else ("ridge", "boosting", "mlp")
        jobs.append(("dynamic_regression", lambda: dynamic_regression(pd.read_parquet(dynamic), models)))
    tables: dict[str, pd.DataFrame] = {}
    extra = {"rank_regression": "rank_predictions", "category_rank": "category_pairs",
             "category_classifier": "category_confusion"}
    for name, job in progress_bar(jobs, desc="analysis", unit="table", disable=not show_progress):
        result = job()
        if isinstance(result, tuple):
            tables[name], tables[extra[name]] = result
        else:
            tables[name] = result
    for name, table in tables.items():
        if name == "rank_predictions":
            write_table(table, out / f"{name}.parquet")
        else:
            write_text(table.to_csv(index=False), out / f"{name}.csv")
    return tables


def headline(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The numbers a run is summarised by: category ratios at keep 0.5, attention-to-rank Spearman."""
    out: dict[str, float] = {}
    if "category_survival" in tables:
        half = tables["category_survival"]
        for row in half[np.isclose(half.keep_ratio, HEADLINE_KEEP)].itertuples():
            out[f"ratio@{HEADLINE_KEEP:g} {row.category}"] = float(row.ratio)
    if "broken_numbers" in tables:
        half = tables["broken_numbers"]
        for row in half[np.isclose(half.keep_ratio, HEADLINE_KEEP)].itertuples():
            out[f"broken numbers@{HEADLINE_KEEP:g}"] = float(row.broken)
            out[f"broken numbers@{HEADLINE_KEEP:g} uniform"] = float(row.uniform)
    if "rank_regression" in tables:
        reg = tables["rank_regression"]
        for model in ("ridge", "boosting"):
            hit = reg[(reg.feature_set == "attention") & (reg.model == model)]
            if len(hit):
                out[f"attention->rank spearman ({model})"] = float(hit.spearman.iloc[0])
    if "dynamic_regression" in tables:
        dyn = tables["dynamic_regression"]
        hit = dyn[(dyn.target == "post_objective") & (dyn.keep_ratio == "pooled")]
        if len(hit):
            out["attention->post-deletion objective pearson (every step, best)"] = float(hit.pearson.max())
    if "drop_regression" in tables and "pearson" in tables["drop_regression"]:
        best = tables["drop_regression"]
        for target, label in (("drop", "first-step drop"), ("post_objective", "post-deletion objective")):
            hit = best[(best.feature_set == "attention") & (best.target == target)]
            if len(hit):
                out[f"attention->{label} pearson (best)"] = float(hit.pearson.max())
    return out
