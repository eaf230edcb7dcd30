"""The learned pruner: exact greedy's deletion order imitated from one hooked forward pass.

``fit_pruner(runs)`` learns the normalised deletion rank of each token (``rank_norm``) from its
features (attention, sparsity, surprisal, position, lexical: every column of ``features``) on
exact-greedy runs; a ridge and a gradient-boosted regressor are compared by cross-validation
grouped by chain (mean per-chain Spearman with the exact order) and the better is refitted on all.
``Pruner.save`` writes a directory: ``estimator.skops`` (scikit-learn's model in skops, no
pickle) and ``pruner.json`` (feature columns, model, what it was fitted on, the CV scores).
The ``learned`` method deletes the tokens with the lowest predicted rank first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import RunError, SettingsError
from .registry import Ordering, Ranking, register, setting

if TYPE_CHECKING:
    import numpy as np

FORMAT = 1
ESTIMATOR, META = "estimator.skops", "pruner.json"
# the only types besides plain scikit-learn estimators that a pruner file may hold
TRUSTED = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
SHIPPED = "pruners"  # package folder of the pruners that ship, one per embedded model name


@dataclass
class Pruner:
    """A fitted token ranker: ``estimator`` maps the ``columns`` of a token's features to its rank."""

    estimator: object
    columns: list[str]
    model: str
    info: dict = field(default_factory=dict)  # chosen estimator, CV scores, runs and chains fitted on

    def scores(self, features: dict) -> np.ndarray:
        """Predicted normalised deletion rank of each token (low: deleted early)."""
        import numpy as np

        missing = [c for c in self.columns if c not in features]
        if missing:
            raise RunError(f"the pruner needs features this model does not give ({missing[0]}, ...): "
                           f"it was fitted on {self.model}")
        return self.estimator.predict(np.column_stack([np.asarray(features[c], float) for c in self.columns]))

    def save(self, path: str | Path) -> Path:
        import skops.io as sio

        from ..store import atomic_write, write_text

        path = Path(path)
        (path / META).unlink(missing_ok=True)  # written last: a pruner is never half one, half another
        atomic_write(path / ESTIMATOR, lambda tmp: sio.dump(self.estimator, tmp))
        meta = {"format": FORMAT, "model": self.model, "columns": self.columns, **self.info}
        write_text(json.dumps(meta, indent=1) + "\n", path / META)
        return path


def load_pruner(path: str | Path) -> Pruner:
    """A pruner saved by ``Pruner.save``; a clear error if ``path`` is not one."""
    import skops.io as sio

    path = Path(path)
    if not (path / META).is_file() or not (path / ESTIMATOR).is_file():
        raise RunError(f"{path} is not a pruner: it needs {META} and {ESTIMATOR} (made by `prunelens fit-pruner`)")
    meta = json.loads((path / META).read_text())
    if meta.get("format") != FORMAT:
        raise RunError(f"{path / META}: pruner format {meta.get('format')!r}, this prunelens reads {FORMAT}")
    unknown = sorted(set(sio.get_untrusted_types(file=path / ESTIMATOR)) - set(TRUSTED))
    if unknown:
        raise RunError(f"{path / ESTIMATOR} holds types no pruner has ({unknown[0]}): not loaded")
    estimator = sio.load(path / ESTIMATOR, trusted=list(TRUSTED))
    if not hasattr(estimator, "predict"):
        raise RunError(f"{path / ESTIMATOR} holds no estimator (a {type(estimator).__name__})")
    return Pruner(estimator, list(meta.pop("columns")), meta.pop("model"),
                  {k: v for k, v in meta.items() if k != "format"})


def shipped_pruner(model_name: str) -> Path:
    """The pruner that ships for an embedded model; an error naming ``fit-pruner`` if none does."""
    path = Path(str(files("prunelens") / SHIPPED / model_name))
    if not (path / META).is_file():
        raise RunError(f"no pruner ships for {model_name}: fit one with `prunelens fit-pruner` and pass --pruner")
    return path


@lru_cache(maxsize=4)
def _cached(path: str) -> Pruner:
    return load_pruner(path)


def fit_pruner(runs: Sequence[str | Path], models: Sequence[str] = ("ridge", "boosting"),
               limit: int | None = None) -> Pruner:
    """Fit a pruner on exact-greedy runs with features (see the module docstring).

    ``limit``: fit on the first ``limit`` chains only (by id), leaving the rest held out.
    """
    import numpy as np
    import pandas as pd

    from ..modelling import cross_predict, estimators, per_example_spearman
    from ..schema import EXAMPLES, FEATURES, feature_sets, load_tokens, read_table
    from ..store import natural_key

    frames, names = [], set()
    for run in map(Path, runs):
        examples = read_table(run, EXAMPLES)
        if set(examples.method) != {"greedy"} or (examples.keep_ratio != 0).any():
            raise RunError(f"{run} was made with {sorted(set(examples.method))} at keep ratio "
                           f"{sorted(set(examples.keep_ratio))}: a pruner learns from exact greedy orders "
                           "of whole chains (--method greedy --keep-ratio 0)")
        if not (run / f"{FEATURES}.parquet").exists():
            raise RunError(f"{run} has no features: run `prunelens features {run}` first")
        featured = pd.read_parquet(run / f"{FEATURES}.parquet", columns=["example_id"]).example_id  # ids only
        missing = sorted(set(examples.example_id) - set(featured), key=natural_key)
        if missing:
            raise RunError(f"{run}: {len(missing)} chain(s) pruned after its features were made ({missing[0]}, ...): "
                           f"run `prunelens features {run}` again")
        names |= set(examples.model)
        frames.append(load_tokens(run))
    if len(names) != 1:
        raise RunError(f"the runs were pruned by different models ({sorted(names)}): fit one pruner per model")
    frame = pd.concat(frames, ignore_index=True)
    if frame.duplicated(["example_id", "position"]).any():
        raise RunError("the runs share example ids: give each chain once")
    if limit is not None:
        if limit < 2:
            raise SettingsError(f"limit {limit}: a pruner needs at least 2 chains (cross-validation by chain)")
        chosen = sorted(set(frame.example_id), key=natural_key)[:limit]
        frame = frame[frame.example_id.isin(chosen)]
    frame = frame.dropna(subset=["rank_norm"]).reset_index(drop=True)
    columns = feature_sets(frame.columns)["all"]
    x, y, groups = frame[columns].to_numpy(float), frame["rank_norm"].to_numpy(float), frame["example_id"].to_numpy()
    makers = estimators("regression")
    cv = {}
    for name in models:
        pred = cross_predict(makers[name], x, y, groups)
        cv[name] = {"chain_spearman": float(np.nanmean(per_example_spearman(frame, pred, "rank_norm")))}
    chosen = max(cv, key=lambda name: cv[name]["chain_spearman"])
    info = {"chosen": chosen, "cv": cv, "runs": [str(r) for r in runs], "chains": int(frame.example_id.nunique()),
            "tokens": len(frame), "target": "rank_norm (exact greedy)",
            "example_ids": sorted(set(frame.example_id), key=natural_key)}
    return Pruner(makers[chosen]().fit(x, y), columns, names.pop(), info)


@dataclass(frozen=True)
class Learned(Ordering):
    """Ranks from one hooked pass per ``passes`` with a pruner fitted on exact greedy runs."""

    name: ClassVar[str] = "learned"
    help: ClassVar[str] = "a pruner fitted on exact greedy runs ranks tokens from one hooked forward pass (--pruner)"
    pruner: str | None = setting(None, "learned: a pruner directory made by fit-pruner (default: the one shipped "
                                       "for the model)", path=True)
    passes: int = setting(1, "learned: rank in this many hooked passes, each on the chain the earlier ones left")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.passes < 1:
            raise SettingsError(f"passes {self.passes} is not a positive number")

    def check_model(self, model_name: str) -> Pruner:
        """The pruner this method ranks with for ``model_name`` (a run calls this before any model loads)."""
        pruner = _cached(str(self.pruner or shipped_pruner(model_name)))
        if pruner.model != model_name:
            raise RunError(f"the pruner was fitted on {pruner.model}, not {model_name}: "
                           "fit one with `prunelens fit-pruner`")
        return pruner

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        """One hooked pass per ``passes``: each deletes its share of ``n_delete`` tokens, lowest
        predicted rank first, ranked on the features of the chain the earlier passes left."""
        from ..hooked import token_features

        pruner = self.check_model(engine.model.name)
        kept, order = list(range(len(layout.reasoning_ids))), []
        for p in range(1, self.passes + 1):
            features = token_features(engine.model, layout.prompt_ids, [layout.reasoning_ids[j] for j in kept],
                                      layout.post_ids, [layout.token_texts[j] for j in kept])
            scores = pruner.scores(features)
            chosen = sorted(range(len(kept)), key=lambda i: scores[i])[: n_delete * p // self.passes - len(order)]
            order += [kept[i] for i in chosen]
            kept = [kept[i] for i in sorted(set(range(len(kept))) - set(chosen))]
        return Ranking(order)


register(Learned)
