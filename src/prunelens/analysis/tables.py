"""The study's tables: does attention predict pruning order, and which categories survive?

Each function takes a run's joined token table (``schema.load_tokens``) and returns a tidy table;
``study.analyze`` writes them all. Every model is cross-validated by example
(``modelling.group_folds``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import RunError
from ..modelling import BOOTSTRAP, bootstrap_ci, cross_predict, estimators, group_folds, pearson, per_example_spearman, spearman
from ..numbers import broken_number_share
from ..schema import HEADLINE_KEEP, KEEP_RATIOS, LABELS, FeatureName, feature_sets, kept_text, present_at, reaches

PUBLISHED_PEARSON = 0.88  # arXiv 2601.03066: attention features -> post-deletion likelihood


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
                         "spearman": spearman(y, pred), "pearson": pearson(y, pred),
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
    for train, test in group_folds(groups):
        model = estimators("regression")["ridge"]().fit(x[train], y[train])
        base = spearman(y[test], model.predict(x[test]))
        for name, idx in blocks.items():
            for _ in range(repeats):
                shuffled = x[test].copy()
                shuffled[:, idx] = shuffled[rng.permutation(len(test))][:, idx]
                drops[name].append(base - spearman(y[test], model.predict(shuffled)))
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
                rows.append({"target": target, "feature_set": name, "model": model_name, "pearson": pearson(y, pred),
                             "spearman": spearman(y, pred),
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
        raise RunError("the dynamic table has no attention features")
    x, groups = frame[cols].to_numpy(float), frame["example_id"].to_numpy()
    cells = list(frame.groupby(["example_id", "keep_ratio"]).indices.values())
    rows = []
    for target in ("post_objective", "drop"):
        y = frame[target].to_numpy(float)
        for name in models:
            pred = cross_predict(estimators("regression")[name], x, y, groups)
            within = np.array([pearson(y[idx], pred[idx]) for idx in cells])
            parts = [("pooled", np.arange(len(y)))] + [(f"{k:g}", idx) for k, idx in frame.groupby("keep_ratio").indices.items()]
            for keep, idx in parts:
                rows.append({"target": target, "model": name, "keep_ratio": keep, "rows": len(idx),
                             "pearson": pearson(y[idx], pred[idx]), "spearman": spearman(y[idx], pred[idx]),
                             "within_chain_pearson": float(np.nanmean(within)) if keep == "pooled" else np.nan,
                             "published_pearson": PUBLISHED_PEARSON})
    return pd.DataFrame(rows)


def category_counts(tokens: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """Per category and example at keep ``ratio``: tokens ``present``, ``expected`` under uniform
    deletion of as many tokens as the chain lost (a unit kept whole can keep a few more), ``count``."""
    frame = tokens.assign(present=present_at(tokens, ratio))
    frame["expected"] = frame.groupby("example_id")["present"].transform("mean")
    return frame.groupby(["category", "example_id"]).agg(present=("present", "sum"), expected=("expected", "sum"),
                                                         count=("present", "size")).reset_index()


def category_survival(tokens: pd.DataFrame, ratios: Sequence[float] = KEEP_RATIOS, seed: int = 0) -> pd.DataFrame:
    """Share of each category still present at each keep ratio, against uniform deletion."""
    rng = np.random.default_rng(seed)
    examples = tokens["example_id"].unique()
    index = {e: i for i, e in enumerate(examples)}
    rows = []
    for ratio in [r for r in ratios if reaches(tokens, r)]:
        per = category_counts(tokens, ratio)
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
    for train, test in group_folds(groups):
        model = estimators("classification")["logistic"]().fit(frame.loc[train, cols].to_numpy(float), y[train])
        pred[test] = model.predict(frame.loc[test, cols].to_numpy(float))
    majority = pd.Series(y).value_counts().idxmax()
    scores = pd.DataFrame([{"features": "attention+sparsity", "model": "logistic",
                            "macro_f1": f1_score(y, pred, labels=labels, average="macro"),
                            "accuracy": float(np.mean(pred == y)),
                            "majority_accuracy": float(np.mean(y == majority))}])
    confusion = pd.DataFrame(confusion_matrix(y, pred, labels=labels), index=labels, columns=labels)
    return scores, confusion.rename_axis("gold").reset_index()
