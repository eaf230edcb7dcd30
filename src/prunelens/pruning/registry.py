"""Pruning methods behind one small protocol, found by name in ``METHODS``.

A method ranks the reasoning tokens of one laid-out example. Search methods (``search``) return
the exact objective trajectory they measured, and offer ``steps``, the same search as a coroutine
of scoring requests, so several examples can be searched side by side; ordering baselines
(``baselines``) return an order and the stage scores its states with the engine, so every
method's trajectory is exact. Text methods (``texts``) return compressed reasoning per keep ratio
instead, scored exactly too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    work: tuple[int, int] | None = None  # a search's own tokens processed and needed (see ``Engine``)
    units: list[list[int]] | None = None  # the positions it deletes as one unit (a word); None: single tokens


class Method(Protocol):
    name: str
    help: str
    settings: tuple[str, ...]  # the PruneConfig fields of METHOD_SETTINGS it uses

    def rank(self, engine: Engine, layout: Layout, config: PruneConfig, n_delete: int, example_id: str,
             progress: Callable[[int], None]) -> Ranking:
        """Delete ``n_delete`` tokens of ``layout``; call ``progress(k)`` as k more are ranked."""


class TextMethod(Protocol):
    """A method that writes new text (``texts``) instead of a deletion order."""

    name: str
    help: str
    settings: tuple[str, ...]

    def prepare(self, model, examples: Sequence, config: PruneConfig) -> None:
        """Check the examples against the method's inputs before any is compressed."""

    def compress(self, model, example, n: int, config: PruneConfig) -> dict[float, str]:
        """Compressed reasoning of ``example`` (``n`` reasoning tokens) per keep ratio."""


METHODS: dict[str, Method | TextMethod] = {}


def writes_text(method: Method | TextMethod) -> bool:
    """Does ``method`` write compressed text (a ``TextMethod``) rather than a deletion order?"""
    return hasattr(method, "compress")


def register(method: Method | TextMethod) -> Method | TextMethod:
    """Add ``method`` to ``METHODS`` under its name (a second method of the same name is an error)."""
    if method.name in METHODS:
        raise ValueError(f"a pruning method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method
