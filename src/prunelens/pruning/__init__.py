"""Greedy likelihood-preserving deletion and the methods it is compared with.

One module per job: ``config`` (every setting), ``registry`` (the method protocol and ``METHODS``),
``engine`` (exact objectives of candidate states), ``search`` (greedy, greedy-words and greedy-fast),
``baselines`` (ordering baselines), ``llmlingua`` (LLMLingua's compression), ``learned`` (the pruner fitted on greedy runs), ``texts`` (methods that write new text), ``reference`` (the naive algorithm), ``stage`` (runs and
tables). Importing this package does not import torch; the engine loads it when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import baselines, learned, llmlingua, search, texts  # noqa: F401  (register the methods)
from ..schema import OBJECTIVES
from .config import PruneConfig
from .registry import METHODS, Method, Ordering, Ranking, TextMethod, make, register, setting, writes_text

if TYPE_CHECKING:
    from .engine import Engine, State
    from .reference import NaiveReference
    from .stage import PruneResult, prune, prune_examples, result_tables

_LAZY = {"Engine": "engine", "State": "engine", "NaiveReference": "reference", "PruneResult": "stage",
         "prune": "stage", "prune_examples": "stage", "result_tables": "stage"}

__all__ = ["METHODS", "OBJECTIVES", "Engine", "Method", "NaiveReference", "Ordering", "PruneConfig", "PruneResult",
           "Ranking", "State", "TextMethod", "make", "prune", "prune_examples", "register", "result_tables", "setting",
           "writes_text"]


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
