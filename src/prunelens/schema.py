"""The run's schema, in one place: its tables, its feature columns, and reading a run back.

A run directory holds tidy Parquet tables joined on ``KEYS = (example_id, position)``:

- ``examples`` (from ``prune``): one row per chain: texts, token ids, the deletion ``order`` and
  the ``objective_trajectory``, the method's settings, ``seconds`` (``rank_seconds`` of them ranking);
- ``tokens`` (from ``prune``): one row per reasoning token: ``token_id``, ``token_text``,
  ``char_start``/``char_end`` in the reasoning, ``deleted_step`` (1..N, null if kept), ``rank_norm``,
  ``drop_first`` (greedy methods only), ``unit`` (the word it was deleted with, for ``greedy-words``;
  else its position; runs made before it lack the column);
- ``features`` (from ``features``): one column per feature, named by ``FeatureName``;
- ``categories`` (from ``annotate``): ``category`` and the ``annotator`` that made it;
- ``texts`` (from ``prune`` with a text method, instead of ``tokens``): one row per chain and keep
  ratio: the compressed ``reasoning``, its ``n_tokens``, ``achieved_ratio`` and exact ``objective``;
- ``dynamic`` (from ``dynamic``): one row per chain, keep ratio and remaining token of an exact
  greedy run: the objective after deleting the token alone there, and attention features then.

``chains_at(run, keep_ratio)`` is the one way to read the chain any run leaves at a keep ratio,
from a deletion order or from compressed text alike; ``present_at`` says which tokens it keeps (a
keep ratio never cuts a unit: one partly deleted there is kept whole).

The constants every stage shares live here too: the objectives, the keep ratios runs are read
at, and the six category labels with their display names and colours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import RunError, SettingsError
from .ops import n_to_delete

if TYPE_CHECKING:  # the tables' libraries load with the first table read: constants alone stay light
    import numpy as np
    import pandas as pd

OBJECTIVES = ("reason-answer", "answer")  # what a pruning run keeps likely (see ``pruning.engine``)
KEEP_RATIOS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)  # the analysis' keep ratios
HEADLINE_KEEP = 0.5  # the keep ratio runs are summarised and compared at
COMPARE_KEEPS = (0.75, 0.5, 0.25)  # keep ratios of agreement and of the normalised objective

# The six functional categories (docs/categories.md): the labels categories.parquet holds, their
# display names and colours (figures and the viewer)
LABELS = ("SYMBOLIC_MATH", "VERBAL_MATH", "ENTITY_NAME", "COREFERENCE", "META_DISCOURSE", "FUNCTION")
DISPLAY = {"SYMBOLIC_MATH": "SymbMath", "VERBAL_MATH": "VerbalMath", "ENTITY_NAME": "EntName",
           "COREFERENCE": "CoRef", "META_DISCOURSE": "MetaDisc", "FUNCTION": "Grammar"}
COLOURS = {"SYMBOLIC_MATH": (98, 160, 202), "VERBAL_MATH": (180, 148, 209), "ENTITY_NAME": (107, 188, 107),
           "COREFERENCE": (174, 136, 129), "META_DISCOURSE": (226, 104, 104), "FUNCTION": (255, 165, 85)}


def colour(label: str) -> str:
    """The category's colour as ``#rrggbb``."""
    return "#%02x%02x%02x" % COLOURS[label]


EXAMPLES, TOKENS, FEATURES, CATEGORIES, TEXTS = "examples", "tokens", "features", "categories", "texts"
DYNAMIC = "dynamic"
KEYS = ("example_id", "position")
UNIT = "unit"
MAKERS = {EXAMPLES: "prune", TOKENS: "prune", FEATURES: "features", CATEGORIES: "annotate", TEXTS: "prune",
          DYNAMIC: "dynamic"}
ANALYSIS = "analysis"  # RUN/analysis/ holds the analysis tables


def prune_tables(text: bool) -> tuple[str, str]:
    """The tables ``prune`` writes per example (``texts`` for a text method, else ``tokens``), the
    one written last, which marks an example done, last."""
    return (TEXTS if text else TOKENS, EXAMPLES)


def stage_tables() -> dict[str, tuple[str, ...]]:
    """Every stage that writes part files, and its tables (what ``prunelens merge`` joins)."""
    return {"prune": (TOKENS, TEXTS, EXAMPLES), FEATURES: (FEATURES,)}

ATTENTION_FAMILIES = ("attn_answer", "attn_later", "attn_next", "attn_to_prompt")
SPARSITY_FAMILIES = ("mlp_sparsity", "resid_hoyer")
PLAIN_FEATURES = ("surprisal", "position_norm", "is_digit", "is_punct", "token_chars")  # one column each
_NAME = re.compile(r"^(?P<family>[a-z_]+)(?:\.(?:L(?P<layer>\d+)(?:\.H(?P<head>\d+))?|(?P<mean>mean)))?"
                   r"(?:@(?P<keep>[0-9.]+))?$")


@dataclass(frozen=True)
class FeatureName:
    """A feature column: ``family[.L{layer}[.H{head}] | .mean][@keep]``.

    No layer and ``mean=False`` is a plain per-token feature (``surprisal``); ``mean`` is the mean
    over layers and heads; ``keep`` marks features recomputed on the chain pruned to that ratio.
    """

    family: str
    layer: int | None = None
    head: int | None = None
    mean: bool = False
    keep: float | None = None

    def __str__(self) -> str:
        name = self.family
        if self.mean:
            name += ".mean"
        elif self.layer is not None:
            name += f".L{self.layer}" + (f".H{self.head}" if self.head is not None else "")
        return name + (f"@{self.keep:g}" if self.keep is not None else "")

    @property
    def kind(self) -> str | None:
        """``attention``, ``sparsity``, ``plain`` or None (not a feature column)."""
        if self.family in ATTENTION_FAMILIES:
            return "attention"
        if self.family in SPARSITY_FAMILIES:
            return "sparsity"
        return "plain" if self.family in PLAIN_FEATURES else None

    @classmethod
    def parse(cls, column: str) -> FeatureName | None:
        """The name of a feature column, or None for any other column."""
        m = _NAME.match(column)
        if m is None:
            return None
        name = cls(m["family"], None if m["layer"] is None else int(m["layer"]),
                   None if m["head"] is None else int(m["head"]), m["mean"] is not None,
                   None if m["keep"] is None else float(m["keep"]))
        return name if name.kind is not None else None


def feature_names(columns) -> list[FeatureName]:
    """The feature columns among ``columns``, parsed, in their order."""
    return [name for name in map(FeatureName.parse, columns) if name is not None]


HEADLINE_FEATURE = str(FeatureName("attn_answer", mean=True))  # attention from the answer, all layers and heads


def feature_sets(columns) -> dict[str, list[str]]:
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


def is_text_run(run: str | Path) -> bool:
    """Does ``run`` hold compressed texts (a text method's run) rather than a deletion order?"""
    return (Path(run) / f"{TEXTS}.parquet").exists()


def read_table(run: str | Path, table: str) -> pd.DataFrame:
    """``RUN/TABLE.parquet``, or a clear error naming the stage that makes it."""
    import pandas as pd

    path = Path(run) / f"{table}.parquet"
    if not path.exists() and table == TOKENS and is_text_run(run):
        raise RunError(f"{run} holds compressed texts, not a deletion order: token-level stages (features, "
                       "annotate, analyze, figures, view, agreement of orders) need a run of an ordering method")
    if not path.exists():
        raise RunError(f"{path} does not exist: run `prunelens {MAKERS.get(table, table)}` first")
    return pd.read_parquet(path)


def load_tokens(run: str | Path) -> pd.DataFrame:
    """The run's token table joined with its features and categories where they exist."""
    import pandas as pd

    run = Path(run)
    table = read_table(run, TOKENS)
    for name in (FEATURES, CATEGORIES):
        if (run / f"{name}.parquet").exists():
            extra = pd.read_parquet(run / f"{name}.parquet")
            extra = extra.drop(columns=[c for c in extra.columns if c in table.columns and c not in KEYS])
            table = table.merge(extra, on=list(KEYS), how="left", validate="one_to_one")
    return table


def _limits(tokens: pd.DataFrame, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Per token row: deletions its chain needs to reach ``ratio``, and deletions the run made."""
    import numpy as np

    n = tokens.groupby("example_id")["position"].transform("size").to_numpy()
    made = tokens["deleted_step"].notna().groupby(tokens["example_id"]).transform("sum").to_numpy()
    return np.array([n_to_delete(int(k), ratio) for k in n], dtype=int), made


def reaches(tokens: pd.DataFrame, ratio: float) -> bool:
    """Did the run prune every chain of ``tokens`` down to ``ratio``?"""
    need, made = _limits(tokens, ratio)
    return bool((need <= made).all())


def present_at(tokens: pd.DataFrame, ratio: float) -> pd.Series:
    """Whether each token is still in its chain once ``ratio`` of the chain's tokens are kept.

    Where the ratio falls inside a unit (``greedy-words`` deletes a word's tokens one after another),
    the unit is kept whole: a chain keeps at most one unit more than the ratio asks, and never
    part of a word. Raises RunError where the run stopped before that ratio (the chain there is unknown).
    """
    import numpy as np
    import pandas as pd

    need, made = _limits(tokens, ratio)
    if (need > made).any():
        example = tokens["example_id"].to_numpy()[need > made][0]
        raise RunError(f"{example}: the run stopped before keep ratio {ratio:g} "
                       "(pruned with a higher --keep-ratio)")
    step = tokens["deleted_step"].astype("float").to_numpy()
    present = pd.Series(np.isnan(step) | (step > need), index=tokens.index)
    if UNIT in tokens:
        present |= present.groupby([tokens["example_id"], tokens[UNIT]]).transform("any")  # its unit stays whole
    return present


def kept_text(tokens: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """Per example (the index): ``text``, its kept tokens' text in order at ``ratio``, and ``n_kept``.

    Examples that keep no token are absent.
    """
    import pandas as pd

    tokens = tokens.sort_values(list(KEYS), kind="stable")
    kept = tokens[present_at(tokens, ratio).to_numpy()].groupby("example_id", sort=False)["token_text"]
    return pd.DataFrame({"text": kept.agg("".join), "n_kept": kept.size()})


def chains_at(run: str | Path, keep_ratio: float) -> pd.DataFrame:
    """The chain each example of ``run`` keeps at ``keep_ratio``.

    Columns: ``example_id, question, reasoning`` (the kept tokens' text, in order), ``answer``,
    ``n_tokens`` (reasoning tokens before pruning), ``n_kept``. Ratio 1 gives the whole chain.
    """
    if not 0.0 <= keep_ratio <= 1.0:
        raise SettingsError(f"keep ratio {keep_ratio} is not in [0, 1]")
    examples = read_table(run, EXAMPLES)
    if is_text_run(run):
        return _texts_at(run, examples, keep_ratio)
    kept = kept_text(read_table(run, TOKENS), keep_ratio)
    out = examples[["example_id", "question", "answer"]].copy()
    out.insert(2, "reasoning", out.example_id.map(kept.text).astype("string").fillna("").str.strip())
    out["n_tokens"] = examples["n_reasoning"].to_numpy()
    out["n_kept"] = out.example_id.map(kept.n_kept).fillna(0).astype(int)
    return out.reset_index(drop=True)


def _texts_at(run: str | Path, examples: pd.DataFrame, keep_ratio: float) -> pd.DataFrame:
    import numpy as np

    out = examples[["example_id", "question", "reasoning", "answer", "n_reasoning"]].rename(
        columns={"n_reasoning": "n_tokens"})
    if keep_ratio == 1.0:
        return out.assign(n_kept=out.n_tokens).reset_index(drop=True)
    texts = read_table(run, TEXTS)
    at = texts[np.isclose(texts.keep_ratio, keep_ratio)].set_index("example_id")
    missing = sorted(set(out.example_id) - set(at.index))
    if missing:
        have = sorted(set(texts.keep_ratio[texts.example_id == missing[0]]))
        raise RunError(f"{missing[0]}: the run has no compressed chain at keep ratio {keep_ratio:g} "
                       f"(it has {', '.join(f'{r:g}' for r in have) or 'none'})")
    out["reasoning"] = out.example_id.map(at.reasoning)
    out["n_kept"] = out.example_id.map(at.n_tokens).astype(int)
    return out[["example_id", "question", "reasoning", "answer", "n_tokens", "n_kept"]].reset_index(drop=True)
