"""prunelens: which tokens of a reasoning chain does a language model actually need?

A run in a notebook::

    from prunelens import Run, load_model
    model = load_model()                                   # embedded SmolLM2-135M-Instruct
    run = Run("runs/nb")
    run.prune(model, "gsm-symbolic", limit=3, max_tokens=40)
    run.features(); run.annotate()
    run.tokens()                                           # order, features and categories, one row per token

One chain in memory: ``prune(model, example)`` returns a result with ``.table()`` and ``.features()``.
The model's own chains first: ``generate_chains(model, "gsm8k:data/gsm8k/train.jsonl", "runs/own", limit=20)``
writes ``runs/own/chains.jsonl``, which ``run.prune(model, "jsonl:runs/own/chains.jsonl")`` reads.
Importing the package is cheap: each name below is imported from its module on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .data import Example, load_examples, select_examples
    from .generation import GenerateConfig, generate_chains
    from .layout import Layout, render
    from .models import PrunerModel, load_model
    from .pruning import METHODS, PruneConfig, PruneResult, prune, prune_examples
    from .run import Run

_LAZY = {"Example": "data", "load_examples": "data", "select_examples": "data", "GenerateConfig": "generation",
         "generate_chains": "generation", "Layout": "layout",
         "render": "layout", "PrunerModel": "models", "load_model": "models", "METHODS": "pruning",
         "PruneConfig": "pruning", "PruneResult": "pruning", "prune": "pruning", "prune_examples": "pruning",
         "Run": "run"}
__all__ = sorted(_LAZY)
__version__ = "0.2.0"


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
