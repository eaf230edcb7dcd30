"""Pruning methods behind one small protocol, found by name in ``METHODS``.

A method is a frozen dataclass whose fields are its settings (``GreedyFast(share=0.1)``): each
field's metadata gives the name a run records it under (``fast_share``; its own name by default)
and a help line, and the method checks its values itself. It ranks the reasoning tokens of one
laid-out example. Search methods (``search``) return the exact objective trajectory they
measured, and offer ``steps``, the same search as a coroutine of scoring requests, so several
examples can be searched side by side; ordering methods (``Ordering``: the baselines) return an
order and the stage scores its states with the engine, so every method's trajectory is exact.
Text methods (``texts``, ``llmlingua``) return compressed reasoning per keep ratio instead,
scored exactly too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import SettingsError

if TYPE_CHECKING:
    from ..layout import Layout
    from .config import PruneConfig
    from .engine import Engine

TRAJECTORIES = ("grid", "full")


@dataclass
class Ranking:
    """What a method returns: the deletion order, and the trajectory if it measured one."""

    order: list[int]  # reasoning positions, first deleted first
    trajectory: list[float] | None = None  # objective before any deletion, then after each
    first_scores: list[float] | None = None  # objective after deleting each token alone, step 1
    work: tuple[int, int] | None = None  # a search's own tokens processed and needed (see ``Engine``)
    units: list[list[int]] | None = None  # the positions it deletes as one unit (a word); None: single tokens


class Method(Protocol):
    name: ClassVar[str]
    help: ClassVar[str]

    def rank(self, engine: Engine, layout: Layout, config: PruneConfig, n_delete: int, example_id: str,
             progress: Callable[[int], None]) -> Ranking:
        """Delete ``n_delete`` tokens of ``layout``; call ``progress(k)`` as k more are ranked."""


class TextMethod(Protocol):
    """A method that writes new text instead of a deletion order."""

    name: ClassVar[str]
    help: ClassVar[str]

    def prepare(self, model, examples: Sequence, config: PruneConfig) -> None:
        """Check the examples against the method's inputs before any is compressed."""

    def compress(self, model, example, n: int, config: PruneConfig) -> dict[float, str]:
        """Compressed reasoning of ``example`` (``n`` reasoning tokens) per keep ratio."""


def setting(default: Any, help: str, key: str | None = None, path: bool = False, flag: tuple[str, Any] | None = None):
    """A method's setting: its default, a help line, the name a run records it under (``key``; the
    field's own name when None), whether it names a local file or directory (``path``: recorded
    absolute), and a command-line flag that sets it to a value (``flag``: ``("--full-trajectory", "full")``)."""
    return field(default=default, metadata={"help": help, "key": key, "path": path, "flag": flag})


def settings_of(method: type | object) -> dict[str, Any]:
    """``{recorded name: field}`` of a method (class or object)."""
    return {f.metadata.get("key") or f.name: f for f in fields(method) if "help" in f.metadata}


def recorded(method: object) -> dict[str, Any]:
    """The method's settings under their recorded names."""
    return {key: getattr(method, f.name) for key, f in settings_of(method).items()}


def defaults(method: type) -> dict[str, Any]:
    """The method's default settings under their recorded names (None where one has none)."""
    return {key: (None if f.default is MISSING else f.default) for key, f in settings_of(method).items()}


def all_settings() -> dict[str, list[str]]:
    """Every recorded setting name of every registered method, with the methods that use it."""
    out: dict[str, list[str]] = {}
    for name, cls in METHODS.items():
        for key in settings_of(cls):
            out.setdefault(key, []).append(name)
    return out


def writes_text(method: object) -> bool:
    """Does ``method`` write compressed text (a ``TextMethod``) rather than a deletion order?"""
    return hasattr(method, "compress")


METHODS: dict[str, type] = {}


def register(cls: type) -> type:
    """Add the method class ``cls`` to ``METHODS`` under its name (a second of the same name is an error);
    usable as a class decorator."""
    if cls.name in METHODS:
        raise ValueError(f"a pruning method named {cls.name!r} is already registered")
    METHODS[cls.name] = cls
    return cls


def make(name: str, **given: Any):
    """The method ``name`` with ``given`` settings (recorded names, ``fast_share``, or field names,
    ``share``); None means "the default". Settings another method uses are ignored, except a path
    (a file given to the wrong method is a mistake worth a line); unknown ones are an error."""
    if name not in METHODS:
        raise SettingsError(f"unknown method {name!r}: use one of {', '.join(METHODS)}")
    cls = METHODS[name]
    mine = settings_of(cls)
    known = all_settings()
    values = {}
    for key, value in given.items():
        f = mine.get(key) or next((f for f in mine.values() if f.name == key), None)
        if f is not None:
            if value is not None:
                values[f.name] = _absolute(value) if f.metadata["path"] else value
        elif key not in known:
            raise SettingsError(f"unknown pruning setting {key!r}: known are {', '.join(sorted(known))}")
        elif value is not None and any(settings_of(METHODS[m])[key].metadata["path"] for m in known[key]):
            raise SettingsError(f"{key} is for --method {' or '.join(known[key])}, not {name}")
    return cls(**values)


def _absolute(value: Any) -> Any:
    """A local file or directory made absolute (a run records it so, any working directory reads it);
    a name that is no local path (a Hugging Face id) stays as it is."""
    if isinstance(value, str) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


@dataclass(frozen=True)
class Ordering:
    """A method that returns an order only; the stage scores its states (``trajectory``)."""

    trajectory: str = setting("grid", "score the state after every deletion (full) or every 0.05 of keep ratio "
                                      "(grid)", flag=("--full-trajectory", "full"))

    def __post_init__(self) -> None:
        if self.trajectory not in TRAJECTORIES:
            raise SettingsError(f"unknown trajectory {self.trajectory!r}: use one of {', '.join(TRAJECTORIES)}")
