"""The pruning stage: prune one example (``prune``) or a dataset into a run (``prune_examples``).

A run's ``prune.json`` records the whole ``PruneConfig`` and the model, so a resumed or merged
run never mixes settings (``max_batch`` and ``memory_gib`` only change speed and may differ).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data import Example
from ..errors import LayoutError, RunError, SettingsError
from ..layout import Layout, render
from ..ops import n_to_delete, progress_bar, trajectory_grid
from ..schema import EXAMPLES, TEXTS, TOKENS, UNIT, prune_tables
from ..store import StageStore, shard_of
from .config import RESOURCE_SETTINGS, PruneConfig
from .registry import Ranking, writes_text

if TYPE_CHECKING:
    from ..cluster import RayOptions


@dataclass
class PruneResult:
    """Deletion order and what was measured along the way, for one example, in memory.

    ``table()`` is the example's token table (as a run's ``tokens.parquet`` holds it) and
    ``features()`` the same rows joined with their features from one hooked pass.
    """

    order: list[int]  # original reasoning positions, in deletion order
    deleted_step: list[int | None]  # per position: 1..N, None if a keep ratio left it in
    trajectory: list[float]  # objective before any deletion, then after each deletion (NaN: not scored)
    first_scores: list[float] | None = None  # objective after deleting each token alone, step 1
    tokens_processed: int = 0  # token slots passed through the model (padding included)
    tokens_needed: int = 0  # the engine's lower bound for the same work
    seconds: float = 0.0
    rank_seconds: float = 0.0  # of ``seconds``, the ranking alone (a baseline's trajectory is scored after)
    unit: list[int] | None = None  # per position: the unit (word) it was deleted with; None: its own
    example_id: str = ""
    layout: Layout | None = field(default=None, repr=False)
    model: object = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.deleted_step)

    def table(self) -> pd.DataFrame:
        """One row per reasoning token: ``position``, ``token_id``, ``token_text``, character span,
        ``deleted_step``, ``rank_norm``, ``drop_first`` and ``unit``."""
        return token_table(self.example_id, self.layout, self)

    def features(self, layers: Sequence[int] | None = None) -> pd.DataFrame:
        """``table()`` joined with each token's features (one hooked pass over the unpruned chain;
        the columns of ``hooked.token_features``)."""
        from ..hooked import token_features

        lay = self.layout
        columns = token_features(self.model, lay.prompt_ids, lay.reasoning_ids, lay.post_ids, lay.token_texts, layers)
        return pd.concat([self.table(), pd.DataFrame(columns)], axis=1)

    def chain_at(self, keep_ratio: float) -> str:
        """The reasoning text kept at ``keep_ratio``, as ``schema.chains_at`` reads a run's (a word the ratio
        falls inside is kept whole; white space at the ends stripped)."""
        from ..schema import kept_text

        kept = kept_text(self.table(), keep_ratio)
        return str(kept.text.iloc[0]).strip() if len(kept) else ""


def _config(config: PruneConfig | None, settings: dict) -> PruneConfig:
    if config is not None and settings:
        raise TypeError("give a PruneConfig or keyword settings, not both")
    return config if config is not None else PruneConfig(**settings)


def prune(model, layout: Layout | Example, config: PruneConfig | None = None, *, example_id: str = "",
          progress: Callable[[int], None] | None = None, **settings) -> PruneResult:
    """Rank the reasoning tokens of one chain: ``prune(model, example, method="greedy-fast")``.

    ``layout``: an ``Example`` (laid out for the model here) or a ``Layout``. Settings are a
    ``PruneConfig`` or its fields (and the method's settings) as keywords. ``progress`` is called
    with the number of tokens ranked as the method goes.
    """

    config = _config(config, settings)
    if isinstance(layout, Example):
        example_id = example_id or layout.id
        layout = render(layout, model.tokenizer, model.max_length, layout=config.layout)
    if writes_text(config.method):
        raise SettingsError(f"{config.method.name} writes compressed text, not an order: run it with prune_examples")
    start = time.perf_counter()
    engine = make_engine(model, config)
    n = len(layout.reasoning_ids)
    n_delete = n_to_delete(n, config.keep_ratio)
    ranking = config.method.rank(engine, layout, config, n_delete, example_id, progress or (lambda k: None))
    ranked = time.perf_counter() - start
    trajectory = ranking.trajectory
    if trajectory is None:
        if progress:
            progress(len(ranking.order))
        steps = None if getattr(config.method, "trajectory", "grid") == "full" else trajectory_grid(n, len(ranking.order))
        trajectory = engine.trajectory(layout.ids, len(layout.prompt_ids), len(layout.post_ids), ranking.order, steps)
    return replace(_result(ranking, n, trajectory, (engine.tokens, engine.useful), start, ranked),
                   example_id=example_id, layout=layout, model=model)


def _result(ranking: Ranking, n: int, trajectory: list[float], work: tuple[int, int], start: float,
            ranked: float) -> PruneResult:
    deleted_step: list[int | None] = [None] * n
    for step, position in enumerate(ranking.order, start=1):
        deleted_step[position] = step
    unit = None
    if ranking.units is not None:
        unit = [0] * n
        for u, positions in enumerate(ranking.units):
            for position in positions:
                unit[position] = u
    tokens, useful = ranking.work or work
    return PruneResult(order=ranking.order, deleted_step=deleted_step, trajectory=trajectory,
                       first_scores=ranking.first_scores, tokens_processed=tokens, tokens_needed=useful,
                       seconds=time.perf_counter() - start, rank_seconds=ranked, unit=unit)


def make_engine(model, config: PruneConfig):
    """The scoring engine of ``config.engine``: the flat engine on CUDA for ``auto`` (unless the model
    soft-caps attention, or has been hooked by TransformerLens, whose attention modules bypass the
    flat engine's: only the rows engine does those), else the rows engine."""
    from .engine import Engine
    from .flat import FlatEngine

    kind = config.engine
    if kind == "auto":
        softcaps = getattr(model.hf.config, "attn_logit_softcapping", None)
        hooked = getattr(model, "_bridge", None) is not None
        kind = "flat" if model.device.type == "cuda" and not softcaps and not hooked else "rows"
    if kind == "flat":
        return FlatEngine(model, config.objective, memory_gib=config.memory_gib)
    return Engine(model, config.objective, config.max_batch, config.memory_gib)


def _prune_lockstep(model, items: Sequence[tuple], config: PruneConfig, out: Path, show_progress: bool) -> None:
    """Search ``config.lockstep`` examples at a time, side by side (see ``search.lockstep``), writing
    each example's parts as its search ends. An example's seconds run from its first pass to its last."""
    from .search import lockstep

    engine = make_engine(model, config)
    store = StageStore(out, "prune", prune_tables(False))
    method, started, items = config.method, {}, dict(items)
    bar = progress_bar(total=len(items), desc=f"prune {method.name} x{config.lockstep}", unit="ex",
                       disable=not show_progress)

    def searches():
        for example_id, (example, layout) in items.items():
            started[example_id] = time.perf_counter()
            n_delete = n_to_delete(len(layout.reasoning_ids), config.keep_ratio)
            yield example_id, method.steps(engine, layout, config, n_delete, lambda k: None)

    for example_id, ranking in lockstep(engine, searches(), config.lockstep):
        example, layout = items[example_id]
        ranked = time.perf_counter() - started[example_id]
        result = _result(ranking, len(layout.reasoning_ids), ranking.trajectory, ranking.work, started[example_id], ranked)
        store.write(example_id, result_tables(example, layout, result, model.name, config))
        bar.update()
    bar.close()


def _example_row(example, layout: Layout, model_name: str, config: PruneConfig, order: list[int],
                 trajectory: list[float], processed: int, needed: int, seconds: float,
                 rank_seconds: float) -> pd.DataFrame:
    return pd.DataFrame([{
        "example_id": example.id, "question": example.question, "reasoning": example.reasoning,
        "answer": example.answer, "content_hash": example.content_hash, "model": model_name, "method": config.method.name,
        "objective": config.objective, "keep_ratio": config.keep_ratio, "seed": config.seed,
        "n_reasoning": len(layout.reasoning_ids), "prompt_ids": layout.prompt_ids,
        "reasoning_ids": layout.reasoning_ids, "post_ids": layout.post_ids, "order": order,
        "objective_trajectory": trajectory, "tokens_processed": processed, "tokens_needed": needed,
        "seconds": seconds, "rank_seconds": rank_seconds,
    }])


def token_table(example_id: str, layout: Layout, result: PruneResult) -> pd.DataFrame:
    """The ``tokens`` rows (one per reasoning token) of a pruned example."""
    n = result.n
    before = result.trajectory[0]
    tokens = pd.DataFrame({
        "example_id": example_id,
        "position": np.arange(n),
        "token_id": layout.reasoning_ids,
        "token_text": layout.token_texts,
        "char_start": [a for a, _ in layout.spans],
        "char_end": [b for _, b in layout.spans],
        "deleted_step": pd.array(result.deleted_step, dtype="Int64"),
        "rank_norm": [s / n if s is not None else None for s in result.deleted_step],
        "drop_first": [before - s for s in result.first_scores] if result.first_scores else None,
        UNIT: result.unit if result.unit is not None else np.arange(n),
    })
    tokens["rank_norm"] = tokens["rank_norm"].astype("Float64")
    tokens["drop_first"] = tokens["drop_first"].astype("Float64")
    return tokens


def result_tables(example, layout: Layout, result: PruneResult, model_name: str,
                  config: PruneConfig) -> dict[str, pd.DataFrame]:
    """One ``examples`` row and the ``tokens`` rows (one per reasoning token) for a pruned example."""
    examples = _example_row(example, layout, model_name, config, result.order, result.trajectory,
                            result.tokens_processed, result.tokens_needed, result.seconds, result.rank_seconds)
    return {EXAMPLES: examples, TOKENS: token_table(example.id, layout, result)}


def text_tables(model, example, layout: Layout, config: PruneConfig) -> dict[str, pd.DataFrame]:
    """One ``examples`` row and the ``texts`` rows (one per keep ratio) of a text method's example.

    Each compressed chain is laid out like any chain and scored exactly; its objective goes into
    the trajectory at the step of its keep ratio (NaN elsewhere), beside the whole chain's at step 0.
    """
    from dataclasses import replace


    start = time.perf_counter()
    engine = make_engine(model, config)
    n = len(layout.reasoning_ids)

    def objective(lay: Layout) -> float:
        return engine.objective_of(engine.state(lay.ids, len(lay.prompt_ids), len(lay.post_ids)))

    texts = config.method.compress(model, example, n, config)
    ranked = time.perf_counter() - start
    trajectory = [float("nan")] * (n + 1)
    trajectory[0] = objective(layout)
    rows = []
    for ratio, text in sorted(texts.items(), reverse=True):
        if text.strip():
            compressed = render(replace(example, reasoning=text), model.tokenizer, model.max_length, layout=config.layout)
            k, value = len(compressed.reasoning_ids), objective(compressed)
        else:  # nothing left: no chain to score
            k, value = 0, float("nan")
        if n_to_delete(n, ratio) > 0:
            trajectory[n_to_delete(n, ratio)] = value
        rows.append({"example_id": example.id, "keep_ratio": ratio, "reasoning": text, "n_tokens": k,
                     "achieved_ratio": k / n, "objective": value})
    examples = _example_row(example, layout, model.name, config, [], trajectory, engine.tokens, engine.useful,
                            time.perf_counter() - start, ranked)
    return {EXAMPLES: examples, TEXTS: pd.DataFrame(rows)}


def run_config(model, config: PruneConfig) -> dict:
    """What ``prune.json`` records: the whole config, the model, the dtype and attention it ran in, and
    the layout ``auto`` chose for its template."""
    from ..layout import template_parts

    return {**config.recorded(), "model": model.name, "dtype": str(model.dtype).removeprefix("torch."),
            "attention": model.hf.config._attn_implementation,
            "layout": template_parts(model.tokenizer, "", config.layout).layout}


def _prune_one(model, item: tuple, config: PruneConfig, out: Path, show_progress: bool = False) -> None:
    """Prune one laid-out example and write its parts (a Ray worker runs this too)."""
    example, layout = item
    text = writes_text(config.method)
    store = StageStore(out, "prune", prune_tables(text))
    if text:
        store.write(example.id, text_tables(model, example, layout, config))
        return
    steps = progress_bar(total=n_to_delete(len(layout.reasoning_ids), config.keep_ratio), desc=example.id,
                         unit="tok", leave=False, disable=not show_progress)
    result = prune(model, layout, config, example_id=example.id, progress=steps.update)
    steps.close()
    store.write(example.id, result_tables(example, layout, result, model.name, config))


def check_ray(config: PruneConfig, ray: RayOptions | None) -> None:
    """Refuse settings a Ray run cannot honour (before any model loads)."""
    if ray is not None and config.lockstep > 1:
        raise SettingsError("lockstep runs the searches of one process side by side: not with --ray, whose "
                         "workers take one example at a time")


def prune_examples(model, examples: Sequence, out: str | Path, config: PruneConfig | None = None, *,
                   shard: str | None = None, skip_bad: bool = False, show_progress: bool = True,
                   data: str | None = None, ray: RayOptions | None = None, **settings) -> dict[str, object]:
    """Prune ``examples`` into ``out``/{examples,tokens}.parquet (text methods: {examples,texts}), resuming.

    ``data`` names the source (recorded; a re-run with another source is refused). A finished
    example whose text differs from the one given under its id is refused too, never resumed.
    With ``ray``, the examples go to the workers of a Ray cluster, each loading the model as
    ``model`` names it (``model`` may then be shape-only: ``load_model(..., weights=False)``).
    A shard (``shard="i/n"``) writes its parts only; ``store.merge`` (``prunelens merge``) joins
    them once every shard is done. Otherwise the tables are merged at the end.

    Returns a summary: ``done`` (pruned now), ``resumed`` (already there), ``skipped`` (messages),
    ``retried`` (examples handed out again after a Ray worker died), ``merged`` (bool).
    Bad examples (too long, empty) stop the run with LayoutError, or are skipped with ``skip_bad``.
    """
    config = _config(config, settings)
    check_ray(config, ray)
    method = config.method
    text = writes_text(method)
    mine = shard_of(examples, shard)
    store = StageStore(out, "prune", prune_tables(text))
    store.check_config({**run_config(model, config), "data": data}, ignore=RESOURCE_SETTINGS + ("attention",),
                       defaults=PruneConfig.recorded_defaults(method.name))  # settings added since
    hashes = store.finished_column("content_hash")
    for example in mine:
        known = hashes.get(example.id)
        if known is not None and known != example.content_hash:
            raise RunError(f"{out} holds another text under id {example.id} (made from other data?): "
                           "use another --out")
    todo = [e for e in mine if e.id not in hashes]
    summary: dict[str, object] = {"done": 0, "resumed": len(mine) - len(todo), "skipped": [], "retried": 0}
    layouts = {}
    for example in todo:  # every example is checked before the first is pruned
        try:
            layouts[example.id] = render(example, model.tokenizer, model.max_length, layout=config.layout)
        except LayoutError as err:
            if not skip_bad:
                raise
            summary["skipped"].append(str(err))
    todo = [e for e in todo if e.id in layouts]
    if text:
        method.prepare(model, examples, config)
    if ray is not None:
        from ..cluster import run_examples, spec_of

        cluster = run_examples(ray, spec_of(model, ray), partial(_prune_one, config=config, out=Path(out).resolve()),
                               [(e.id, (e, layouts[e.id])) for e in todo], bad=(LayoutError,), skip_bad=skip_bad,
                               desc=f"prune {method.name}", show_progress=show_progress)
        summary["skipped"] += cluster["skipped"]
        summary["retried"] = cluster["retried"]
        summary["done"] = cluster["done"]
    elif config.lockstep > 1:
        _prune_lockstep(model, [(e.id, (e, layouts[e.id])) for e in todo], config, Path(out), show_progress)
        summary["done"] = len(todo)
    else:
        for example in progress_bar(todo, desc=f"prune {method.name}", unit="ex", disable=not show_progress):
            _prune_one(model, (example, layouts[example.id]), config, Path(out), show_progress)
            summary["done"] += 1
    summary["merged"] = shard is None
    if shard is None:
        store.merge()
    return summary
