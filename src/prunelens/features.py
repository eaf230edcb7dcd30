"""The features stage: per-token internal features of every pruned chain of a run.

One hooked forward pass per chain (``hooked.token_features``: the columns are documented there),
one row per reasoning token, keyed ``(example_id, position)``, into ``RUN/features.parquet``;
resumable like every stage. ``at_keep`` recomputes the features on the chain the run keeps at
those keep ratios (columns suffixed ``@ratio``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .errors import ExampleError, RunError
from .hooked import sequence_features, token_features
from .ops import kept_positions, progress_bar
from .schema import EXAMPLES, FEATURES, TOKENS, FeatureName, read_table
from .store import StageStore

if TYPE_CHECKING:
    from .cluster import RayOptions


def example_features(model, row: pd.Series, texts: Sequence[str], layers: Sequence[int] | None = None,
                     at_keep: Sequence[float] = ()) -> pd.DataFrame:
    """Feature rows of one pruned example (a row of ``examples.parquet``) and its token texts.

    For each ratio in ``at_keep``, the features are recomputed on the chain that greedy deletion
    leaves at that ratio (columns suffixed ``@ratio``; NaN for tokens deleted by then).
    """
    prompt, reasoning, post = list(row.prompt_ids), list(row.reasoning_ids), list(row.post_ids)
    n = len(reasoning)
    frame = pd.DataFrame({"example_id": row.example_id, "position": np.arange(n)})
    columns = token_features(model, prompt, reasoning, post, texts, layers)
    for ratio in at_keep:
        kept = kept_positions(row.example_id, list(row.order), n, ratio)
        pruned = sequence_features(model, prompt + [reasoning[j] for j in kept] + post, len(prompt),
                                   len(kept), layers)
        for name, values in pruned.items():
            full = np.full(n, np.nan)
            full[kept] = values
            columns[str(replace(FeatureName.parse(name), keep=ratio))] = full
    return pd.concat([frame, pd.DataFrame(columns)], axis=1)


def _features_one(model, item: tuple, layers: Sequence[int] | None, at_keep: Sequence[float], run: Path) -> None:
    """Features of one pruned example, written as its part (a Ray worker runs this too)."""
    row, texts = item
    StageStore(run, "features", (FEATURES,)).write(row.example_id, {
        FEATURES: example_features(model, row, texts, layers, at_keep)})


def features_run(model, run: str | Path, layers: Sequence[int] | None = None, at_keep: Sequence[float] = (),
                 show_progress: bool = True, ray: RayOptions | None = None, skip_bad: bool = False) -> dict:
    """Write ``RUN/features.parquet`` for every pruned example of ``run`` (resumable).

    With ``ray``, the examples go to the workers of a Ray cluster (``model`` may be shape-only). An
    example that cannot be done (``at_keep`` below what its run kept) stops the run, or with
    ``skip_bad`` is left out and reported. Returns ``path``, ``done``, ``resumed`` and ``skipped``
    (one line per example left out).
    """
    examples = read_table(run, EXAMPLES)
    tokens = read_table(run, TOKENS)
    models = set(examples.model)
    if models != {model.name}:
        raise RunError(f"{run} was pruned with {sorted(models)}, not {model.name!r}: pass --model to match")
    store = StageStore(run, "features", (FEATURES,))
    store.check_config({"model": model.name, "layers": list(layers) if layers is not None else None,
                        "at_keep": list(at_keep)})
    finished = store.done()
    texts = tokens.groupby("example_id", sort=False)["token_text"].apply(list)
    todo = [(row.example_id, (row, texts[row.example_id]))
            for _, row in examples[~examples.example_id.isin(finished)].iterrows()]
    task = partial(_features_one, layers=layers, at_keep=list(at_keep), run=Path(run).resolve())
    if ray is not None:
        from .cluster import run_examples, spec_of

        skipped = run_examples(ray, spec_of(model, ray), task, todo, bad=(ExampleError,), skip_bad=skip_bad,
                               desc="features", show_progress=show_progress)["skipped"]
    else:
        skipped = []
        for _, item in progress_bar(todo, desc="features", unit="ex", disable=not show_progress):
            try:
                task(model, item)
            except ExampleError as err:
                if not skip_bad:
                    raise
                skipped.append(str(err))
    path = store.merge().get(FEATURES, Path(run) / f"{FEATURES}.parquet")
    return {"path": path, "done": len(todo) - len(skipped), "resumed": len(finished), "skipped": skipped}
