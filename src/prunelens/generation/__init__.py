"""A teacher writes its own chains: sampling (``sampler``), settings (``config``), rejection sampling
into a chains file that ``prune`` reads (``stage``). Names are imported on first use, so the
command line's ``--help`` stays light."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import GenerateConfig
    from .stage import generate_chains, generate_into, solve

_LAZY = {"GenerateConfig": "config", "generate_chains": "stage", "generate_into": "stage", "solve": "stage"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
