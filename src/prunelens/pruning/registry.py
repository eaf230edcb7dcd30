"""Pruning methods behind one small protocol, found by name in ``METHODS``.

A method ranks the reasoning tokens of one laid-out example. Search methods (``search``) return
the exact objective trajectory they measured; ordering baselines (``baselines``) return an order
and the stage scores its states with the engine, so every method's trajectory is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..layout import Layout
    from .config import PruneConfig
    from .engine import Engine


@dataclass
class Ranking:
    """What a method returns: the deletion order, and the trajectory if it measured one."""

    order: list[int]  # reasoning positions, first deleted first
    trajectory: list[float] | None = None  # objective before any deletion, then after each
    first_scores: list[float] | None = None  # objective after deleting each token alone, step 1


class Method(Protocol):
    name: str
    help: str
    settings: tuple[str, ...]  # the PruneConfig fields of METHOD_SETTINGS it uses

    def rank(self, engine: Engine, layout: Layout, config: PruneConfig, n_delete: int, example_id: str,
             progress: Callable[[int], None]) -> Ranking:
        """Delete ``n_delete`` tokens of ``layout``; call ``progress(k)`` as k more are ranked."""


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to ``METHODS`` under its name (a second method of the same name is an error)."""
    if method.name in METHODS:
        raise ValueError(f"a pruning method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method
