"""``Run``: one run directory, the way a notebook (and the command line) works with it.

``Run(path)`` opens a run, or names one not made yet: nothing is read or written until asked.
Every stage is a method that writes into the directory and resumes what is already there
(``prune``, ``features``, ``annotate``, ``dynamic``, ``analyze``, ``figures``, ``view``), and every
table reads back as a DataFrame (``examples``, ``tokens``: order, features and categories joined on
``(example_id, position)``; ``chains_at``). The checks and the orchestration live here: the
settings are checked before any model loads, chains are selected by length with the tokenizer
alone, shards take their share of the cores, a Ray cluster is joined once the model is known to
exist, and stages after ``prune`` use the run's own model unless told otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import RunError, SettingsError
from .models import DEFAULT_MODEL, tokenizer_of
from .ops import set_threads
from .schema import ANALYSIS, EXAMPLES, TOKENS, chains_at, is_text_run, load_tokens, read_table

if TYPE_CHECKING:
    from .cluster import RayOptions
    from .data import Example
    from .models import PrunerModel


PIPELINE = ("prune", "features", "annotate", "analyze", "figures", "view")  # the stages in order


class Run:
    """A run directory: its tables, its settings, and every stage that writes into it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- reading -----------------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, dict]:
        """Each stage's recorded settings: ``{"prune": {...}, "features": {...}, ...}``."""
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.path.glob("*.json"))}

    @property
    def exists(self) -> bool:
        """Has the run been pruned (its ``examples`` table written)?"""
        return (self.path / f"{EXAMPLES}.parquet").exists()

    def has(self, table: str) -> bool:
        """Has the stage that makes ``table`` run (``features``, ``categories``, ...)?"""
        return (self.path / f"{table}.parquet").exists()

    @property
    def model_name(self) -> str:
        """The model the run was pruned with, as it was recorded."""
        models = set(self.examples().model)
        if len(models) != 1:
            raise RunError(f"{self.path} was pruned with several models: {sorted(models)}")
        return models.pop()

    def table(self, name: str) -> pd.DataFrame:
        """One table of the run (``examples``, ``tokens``, ``features``, ``categories``, ``texts``, ``dynamic``)."""
        return read_table(self.path, name)

    def examples(self) -> pd.DataFrame:
        """One row per chain: texts, token ids, the deletion ``order``, the ``objective_trajectory``."""
        return read_table(self.path, EXAMPLES)

    def tokens(self) -> pd.DataFrame:
        """One row per reasoning token: its deletion step, features and category, joined on
        ``(example_id, position)`` (features and categories where those stages ran)."""
        return load_tokens(self.path)

    def chains_at(self, keep_ratio: float) -> pd.DataFrame:
        """The chain each example keeps at ``keep_ratio`` (``schema.chains_at``)."""
        return chains_at(self.path, keep_ratio)

    @property
    def is_text(self) -> bool:
        """Does the run hold compressed texts (a text method's run) rather than a deletion order?"""
        return is_text_run(self.path)

    # -- stages ------------------------------------------------------------------------------------

    def prune(self, model: PrunerModel | str, examples: str | Iterable[Example], method: str | object = "greedy", *,
              limit: int | None = None, min_tokens: int = 0, max_tokens: int | None = None, seed: int = 0,
              skip_bad: bool = False, shard: str | None = None, ray: RayOptions | None = None,
              threads: int | None = None, device: str | None = None, attention: str | None = None,
              show_progress: bool = True, **settings: Any) -> dict[str, Any]:
        """Prune ``examples`` (Example objects, or a source as ``load_examples`` reads it) into the run.

        ``method`` is a method's name with its ``settings`` as keywords, or a method object; the
        other keywords of ``PruneConfig`` (``objective``, ``keep_ratio``, ``max_batch``, ...) go in
        ``settings`` too. ``limit``, ``min_tokens`` and ``max_tokens`` select the chains (by reasoning
        tokens). ``model`` is a loaded model or a name (loaded here, after every check: shape only
        with ``ray``, whose workers load the weights). ``shard="i/n"`` prunes every n-th example
        and leaves the merge to ``merge`` once every shard is done; ``threads`` sets torch's CPU
        threads (default with a shard: the cores divided by n); ``attention`` forces ``sdpa`` or
        ``eager`` for a model loaded here (default: by family). Returns the summary of
        ``pruning.prune_examples``, with ``skipped`` holding bad input lines and examples.
        """
        from .data import same_source, select_examples, source_id
        from .pruning import PruneConfig, prune_examples
        from .pruning.stage import check_ray
        from .store import shard_of

        config = PruneConfig(method, seed=seed, **settings)
        shard_of([], shard)
        check_ray(config, ray)
        if shard and ray is not None:
            raise SettingsError("--shard and --ray do not mix: the cluster hands out every example")
        check_model = getattr(config.method, "check_model", None)
        if check_model is not None:  # a learned pruner: its file, and that it fits the model
            from .models import model_id

            check_model(model_id(_name(model)))
        self._as_directory()
        source = examples if isinstance(examples, str) else None
        skipped: list[str] = []
        chosen = select_examples(examples, lambda: tokenizer_of(model), limit=limit, min_tokens=min_tokens,
                                 max_tokens=max_tokens, seed=seed, skip_bad=skip_bad, skipped=skipped)
        if ray is None:
            set_threads(threads, shard)
            device = device or _default_device()
        else:
            device = _cluster_device(model, ray)
        loaded = _load(model, device, config.torch_dtype(device), weights=ray is None, attention=attention)
        data = source_id(source) if source is not None else None
        recorded = self.config.get("prune", {}).get("data")
        if recorded != data and same_source(recorded, data):
            data = recorded  # a run made before data ids: the same file, recorded by its path then
        summary = prune_examples(loaded, chosen, self.path, config, shard=shard, skip_bad=skip_bad,
                                 show_progress=show_progress, data=data, ray=ray)
        summary["skipped"] = skipped + summary["skipped"]
        return summary

    def merge(self) -> dict[str, Path]:
        """Join the finished part files of every stage into the run's tables (after shards)."""
        from .schema import stage_tables
        from .store import StageStore

        stages = stage_tables()
        if not any(StageStore(self.path, stage, tables).parts.is_dir() for stage, tables in stages.items()):
            raise RunError(f"{self.path} is not a run directory: it has no parts/ of prune or features to merge")
        written = {}
        for stage, tables in stages.items():
            written.update(StageStore(self.path, stage, tables).merge())
        return written

    def features(self, model: PrunerModel | str | None = None, *, layers: Sequence[int] | None = None,
                 at_keep: Sequence[float] = (), ray: RayOptions | None = None, threads: int | None = None,
                 device: str | None = None, attention: str | None = None, skip_bad: bool = False,
                 show_progress: bool = True) -> dict[str, Any]:
        """Per-token features of every chain into ``features.parquet`` (``features.features_run``);
        ``model``: the run's own by default (another one is refused)."""
        from .features import features_run

        self.examples()  # a bad run fails before any model loads
        name = self._model(model)
        if ray is None:
            set_threads(threads)
            loaded = _load(model if model is not None and not isinstance(model, str) else name, device,
                           attention=attention)
        else:
            loaded = _load(name, _cluster_device(name, ray), weights=False, attention=attention)
        return features_run(loaded, self.path, layers, at_keep, show_progress=show_progress, ray=ray,
                            skip_bad=skip_bad)

    def annotate(self, annotator=None) -> Path:
        """Every token's category into ``categories.parquet`` (the rules, or ``annotator``)."""
        from .categories import annotate_run

        return annotate_run(self.path, annotator)

    def annotate_chains(self, model: PrunerModel | str, examples: str | Iterable[Example], annotator=None, *,
                        limit: int | None = None, min_tokens: int = 0, max_tokens: int | None = None, seed: int = 0,
                        skip_bad: bool = False) -> Path:
        """Categories of chains not pruned yet (``examples``, selected as ``prune`` selects them), tokenised
        as ``prune`` would with ``model``'s tokenizer (no weights loaded), into ``categories.parquet``."""
        from .categories import annotate_examples
        from .data import select_examples

        self._as_directory()
        skipped: list[str] = []
        chosen = select_examples(examples, lambda: tokenizer_of(model), limit=limit, min_tokens=min_tokens,
                                 max_tokens=max_tokens, seed=seed, skip_bad=skip_bad, skipped=skipped)
        return annotate_examples(tokenizer_of(model), chosen, self.path, annotator)

    def export_demo(self, path: str | Path) -> Path:
        """The run's labels in the published demo format (``reason_tokens_json``)."""
        from .categories import export_demo

        return export_demo(self.path, path)

    def dynamic(self, model: PrunerModel | str | None = None, keeps: Sequence[float] | None = None,
                device: str | None = None, attention: str | None = None, show_progress: bool = True) -> Path:
        """Every remaining token scored at several keep ratios of an exact greedy run (``dynamic.parquet``)."""
        from .dynamic import DYNAMIC_KEEPS, dynamic_run

        keeps = DYNAMIC_KEEPS if keeps is None else tuple(keeps)
        if not all(0 < k <= 1 for k in keeps):
            raise SettingsError(f"--keeps {','.join(map(str, keeps))}: keep ratios must be in (0, 1]")
        methods = set(self.examples().method)
        if methods != {"greedy"}:
            raise RunError(f"{self.path} was made with {sorted(methods)}: dynamic importance follows exact "
                           "greedy's states (--method greedy)")
        name = self._model(model)
        loaded = _load(model if model is not None and not isinstance(model, str) else name, device, attention=attention)
        return dynamic_run(loaded, self.path, keeps, show_progress=show_progress)

    def analyze(self, out: str | Path | None = None, linear_only: bool = False,
                show_progress: bool = True) -> dict[str, pd.DataFrame]:
        """Every analysis table into ``out`` (default ``RUN/analysis``); returns them."""
        from .analysis import analyze

        return analyze(self.path, out, show_progress=show_progress, linear_only=linear_only)

    def headline(self) -> dict[str, float]:
        """The numbers the run is summarised by, from its analysis tables (``analyze`` first)."""
        from .analysis import headline

        folder = self.path / ANALYSIS
        if not folder.is_dir():
            raise RunError(f"{folder} does not exist: run `prunelens analyze {self.path}` first")
        return headline({p.stem: pd.read_csv(p) for p in folder.glob("*.csv")})

    def figures(self, out: str | Path | None = None, compare: Sequence[str | Path] = ()) -> list[Path]:
        """Every figure (PNG and PDF) into ``out`` (default ``RUN/figures``); ``compare``: other runs
        drawn beside it."""
        from .figures import make_figures

        out = Path(out) if out is not None else self.path / "figures"
        if out.exists() and not out.is_dir():
            raise SettingsError(f"--out {out} is a file, not a directory")
        return make_figures(self.path, out, [Path(c) for c in compare])

    def view(self, out: str | Path | None = None) -> Path:
        """One self-contained page to step through the run (default ``RUN/viewer.html``)."""
        from .viewer import write_viewer

        out = Path(out) if out is not None else self.path / "viewer.html"
        if out.is_dir():
            raise SettingsError(f"--out {out} is a directory, not a file")
        return write_viewer(self.path, out)

    def agree(self, other: str | Path | Run, random: str | Path | Run | None = None) -> pd.DataFrame:
        """How alike this run's orders and ``other``'s are, per shared chain; with ``random`` (a random
        deletion run of the same chains), ``other``'s normalised objective against this run as exact
        greedy."""
        from .analysis import normalised_objective, order_agreement

        other, random = Run(other), (Run(random) if random is not None else None)
        if other.is_text and random is None:
            raise SettingsError(f"{other.path} holds compressed texts, no order to agree on: give --random RUN "
                                "for the normalised objective")
        normalised = normalised_objective(other.examples(), self.examples(), random.examples()) \
            if random is not None else None
        if other.is_text:
            return normalised
        table = order_agreement(self.table(TOKENS), other.table(TOKENS))
        return table if normalised is None else table.merge(normalised, on="example_id", how="left")

    def survival_difference(self, other: str | Path | Run, keep_ratio: float = 0.5) -> pd.DataFrame:
        """Each category's survival ratio to uniform deletion at ``keep_ratio`` here and in ``other``
        (another run of the same problems: other chains, another pruner or method), their difference
        and its 95% paired bootstrap interval over the problems both hold. Both runs annotated."""
        from .analysis import survival_difference

        other = Run(other)
        tables = []
        for run in (self, other):
            tokens = run.tokens()
            if "category" not in tokens:
                raise RunError(f"{run.path} has no categories: run annotate on it first")
            tables.append(tokens)
        return survival_difference(*tables, ratio=keep_ratio)

    # -- the whole pipeline ------------------------------------------------------------------------

    @classmethod
    def demo(cls, path: str | Path = "runs/demo", model: PrunerModel | str = DEFAULT_MODEL,
             examples: str | Iterable[Example] = "gsm-symbolic", limit: int = 12, max_tokens: int = 50,
             method: str = "greedy", seed: int = 0, device: str | None = None, attention: str | None = None,
             show_progress: bool = True, stages: Sequence[str] = PIPELINE) -> Run:
        """Every stage of ``stages`` (in pipeline order) into ``path``, resuming what is there:
        ``limit`` chains of at most ``max_tokens`` reasoning tokens of ``examples``, pruned by ``method``."""
        unknown = sorted(set(stages) - set(PIPELINE))
        if unknown:
            raise SettingsError(f"unknown stages {unknown}: use some of {', '.join(PIPELINE)}")
        run = cls(path)
        loaded = _load(model, device, attention=attention)
        for stage in [s for s in PIPELINE if s in stages]:
            if stage == "prune":
                run.prune(loaded, examples, method, limit=limit, max_tokens=max_tokens, seed=seed,
                          show_progress=show_progress)
            elif stage == "features":
                run.features(loaded, show_progress=show_progress)
            elif stage == "analyze":
                run.analyze(show_progress=show_progress)
            else:
                getattr(run, stage)()
        return run

    # -- helpers -----------------------------------------------------------------------------------

    def _as_directory(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise SettingsError(f"--out {self.path} is a file, not a directory")

    def _model(self, model: PrunerModel | str | None) -> str:
        """The model a later stage uses: the run's own, or ``model`` where it is that one; another is refused."""
        from .models import model_id

        recorded = self.model_name
        if model is None:
            return recorded
        name = model_id(_name(model))
        if name != recorded and name != model_id(recorded):
            raise RunError(f"{self.path} was pruned with {recorded!r}, not {name!r}: pass --model to match "
                           "(or none: the run's own model)")
        return recorded


def _name(model: PrunerModel | str) -> str:
    return model if isinstance(model, str) else model.name


def _load(model: PrunerModel | str, device: str | None = None, dtype=None, weights: bool = True,
          attention: str | None = None) -> PrunerModel:
    """``model`` itself when loaded, else loaded by name."""
    if not isinstance(model, str):
        return model
    from .models import load_model

    return load_model(model, device, dtype, attention=attention, weights=weights)


def _default_device() -> str:
    from .models import default_device

    return default_device()


def _cluster_device(model: PrunerModel | str, ray: RayOptions) -> str:
    """Join or start the cluster once the model is known to exist; the device its workers use."""
    from .cluster import connect
    from .models import resolve_model_path

    if isinstance(model, str):
        resolve_model_path(model)  # a bad model fails before the cluster starts
    return connect(ray)
