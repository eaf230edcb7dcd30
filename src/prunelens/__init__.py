"""prunelens: which tokens of a reasoning chain does a language model actually need?

Three lines from a notebook::

    from prunelens import load_model, load_examples, prune_examples
    model = load_model()                                   # embedded SmolLM2-135M-Instruct
    prune_examples(model, load_examples("gsm-symbolic", limit=3), "runs/nb")

Importing the package is cheap: each name below is imported from its module on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .data import Example, load_examples
    from .layout import Layout, render
    from .models import PrunerModel, load_model
    from .pruning import PruneConfig, PruneResult, prune, prune_examples

_LAZY = {"Example": "data", "load_examples": "data", "Layout": "layout", "render": "layout",
         "PrunerModel": "models", "load_model": "models", "PruneConfig": "pruning", "PruneResult": "pruning",
         "prune": "pruning", "prune_examples": "pruning"}
__all__ = sorted(_LAZY)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
