"""Dynamic importance: what deleting each token does at several points of exact greedy pruning.

The published r = 0.88 predicts post-deletion likelihood from attention; ``drop_first`` covers
only the first step. Here, for each chain of an exact-greedy run and each keep ratio of ``keeps``,
the chain greedy leaves there is the current state: every remaining token is deleted alone and
the objective after it scored exactly (``post_objective``; ``drop`` = ``current`` - it), beside the
attention features of the current, already pruned chain (``features`` column names). One row per
chain, keep ratio and remaining token, keyed ``(example_id, keep_ratio, position)``; ``position``
is the token's place in the original chain. ``RUN/dynamic.parquet``, resumable like every stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import RunError, SettingsError
from .ops import kept_positions, progress_bar
from .schema import DYNAMIC, EXAMPLES, read_table
from .store import StageStore

DYNAMIC_KEEPS = (1.0, 0.75, 0.5, 0.25)


def example_dynamic(model, engine, row: pd.Series, keeps: Sequence[float] = DYNAMIC_KEEPS) -> pd.DataFrame:
    """Rows of one example (a row of ``examples.parquet``) at each keep ratio of ``keeps``."""
    from .hooked import sequence_features

    prompt, reasoning, post = list(row.prompt_ids), list(row.reasoning_ids), list(row.post_ids)
    n, order = len(reasoning), list(row.order)
    frames = []
    for keep in keeps:
        kept = kept_positions(row.example_id, order, n, keep)
        if len(kept) < 2:  # deleting the last token leaves no chain to score
            continue
        ids = prompt + [reasoning[j] for j in kept] + post
        state = engine.state(ids, len(prompt), len(post))
        current = engine.objective_of(state)
        post_objective = np.array(engine.score(state, [[i] for i in range(len(kept))]))
        features = sequence_features(model, ids, len(prompt), len(kept), families=("attn",))
        frames.append(pd.DataFrame({"example_id": row.example_id, "keep_ratio": keep, "position": kept,
                                    "current": current, "post_objective": post_objective,
                                    "drop": current - post_objective, **features}))
    return pd.concat(frames, ignore_index=True)


def dynamic_run(model, run: str | Path, keeps: Sequence[float] = DYNAMIC_KEEPS, show_progress: bool = True) -> Path:
    """Write ``RUN/dynamic.parquet`` for every example of an exact-greedy ``run`` (resumable)."""
    from .pruning import Engine

    examples = read_table(run, EXAMPLES)
    if set(examples.method) != {"greedy"}:
        raise RunError(f"{run} was made with {sorted(set(examples.method))}: dynamic importance follows "
                       "exact greedy's states (--method greedy)")
    if set(examples.model) != {model.name}:
        raise RunError(f"{run} was pruned with {sorted(set(examples.model))}, not {model.name!r}: pass --model to match")
    bad = [k for k in keeps if not 0 < k <= 1]
    if bad:
        raise SettingsError(f"keep ratios {bad} are not in (0, 1]")
    store = StageStore(run, DYNAMIC, (DYNAMIC,))
    store.check_config({"model": model.name, "keeps": list(keeps)})
    engine = Engine(model, examples.objective.iloc[0])
    todo = examples[~examples.example_id.isin(store.done())]
    for _, row in progress_bar(todo.iterrows(), total=len(todo), desc="dynamic", unit="ex", disable=not show_progress):
        store.write(row.example_id, {DYNAMIC: example_dynamic(model, engine, row, keeps)})
    return store.merge().get(DYNAMIC, Path(run) / f"{DYNAMIC}.parquet")
