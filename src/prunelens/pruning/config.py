"""``PruneConfig``: a pruning run's settings, validated once, before any model is loaded.

The config holds the method (an object that owns its settings: ``registry``), the objective, the
keep ratio, the seed, and the resources (``max_batch``, ``memory_gib``, ``dtype``, ``lockstep``),
which change speed, not results. A run records it whole and flat in ``prune.json``: every
setting of every method by its recorded name, null where this method has no such setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import SettingsError
from ..layout import LAYOUTS
from ..schema import OBJECTIVES
from .registry import METHODS, all_settings, defaults, make, recorded, settings_of, writes_text

DTYPES = ("auto", "float32", "bfloat16", "float16")
ENGINES = ("auto", "rows", "flat")  # scoring engines: engine.Engine, flat.FlatEngine
RESOURCE_SETTINGS = ("max_batch", "memory_gib", "lockstep", "engine")  # change speed, not results: a resumed run may change them


@dataclass(frozen=True, init=False)
class PruneConfig:
    """Settings of a pruning run: ``PruneConfig(method="greedy-fast", keep_ratio=0.5, fast_share=0.1)``,
    or with a method object, ``PruneConfig(GreedyFast(share=0.1), keep_ratio=0.5)``.

    ``keep_ratio``: stop once this share of the reasoning tokens is left (0 ranks them all);
    ``seed``: of random orders; ``max_batch`` caps packed rows per forward pass and ``memory_gib``
    sets the rows engine's memory budget (default 2 GiB on CPU, 60% of free GPU memory); ``engine``:
    ``rows`` (``engine.Engine``), ``flat`` (``flat.FlatEngine``) or ``auto`` (flat on CUDA); ``lockstep``:
    the searches of this many examples run side by side, their candidates scored in the same
    passes; ``dtype`` ``auto`` is float32 on CPU and bfloat16 on CUDA. A method's own settings go
    by keyword with a method name (recorded names such as ``fast_share``, or the method's field
    names); settings of other methods are checked and ignored, except files (``pruner=``,
    ``compressed=``, ``rewriter=``), which name the method they are for.
    """

    method: Any = field(default="greedy", metadata={"help": "the pruning method (see METHODS)"})
    objective: str = field(default="reason-answer", metadata={
        "help": "reason-answer: mean log-prob of kept reasoning + answer; answer: answer only", "choices": OBJECTIVES})
    keep_ratio: float = field(default=0.0, metadata={
        "help": "stop when this share of reasoning tokens is left (0: rank them all)"})
    seed: int = field(default=0, metadata={"help": "seed for generated data and random orders"})
    max_batch: int | None = field(default=None, metadata={"help": "most packed rows per forward pass"})
    memory_gib: float | None = field(default=None, metadata={
        "help": "memory budget of the scoring engine (default: 2 on CPU, 60%% of free GPU memory)"})
    dtype: str = field(default="auto", metadata={
        "help": "weights' dtype (auto: float32 on CPU, bfloat16 on CUDA); log-softmax is float32", "choices": DTYPES})
    lockstep: int = field(default=1, metadata={
        "help": "the searches: search this many examples side by side, scored in shared passes"})
    layout: str = field(default="auto", metadata={
        "help": "think: the reasoning inside the model's think block, the answer after it; plain: the reasoning "
                "as the reply; auto: think where the chat template opens a think block", "choices": LAYOUTS})
    engine: str = field(default="auto", metadata={
        "help": "scoring engine: rows (packed rows, reuse across steps) or flat (one token-major batch, key/values "
                "by index); auto: flat on CUDA, rows on CPU", "choices": ENGINES})

    def __init__(self, method: str | object = "greedy", objective: str = "reason-answer", keep_ratio: float = 0.0,
                 seed: int = 0, max_batch: int | None = None, memory_gib: float | None = None, dtype: str = "auto",
                 lockstep: int = 1, layout: str = "auto", engine: str = "auto", **settings: Any):
        if isinstance(method, str):
            _check_others(method, settings)
            method = make(method, **settings)
        elif settings:
            raise SettingsError(f"give {sorted(settings)} to the method object, not beside it")
        elif not hasattr(method, "name") or not (hasattr(method, "rank") or writes_text(method)):
            raise SettingsError(f"{method!r} is not a pruning method (one of METHODS, or an object with name and rank)")
        for name, value in (("method", method), ("objective", objective), ("keep_ratio", float(keep_ratio)),
                            ("seed", seed), ("max_batch", max_batch), ("memory_gib", memory_gib), ("dtype", dtype),
                            ("lockstep", lockstep), ("layout", layout), ("engine", engine)):
            object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        if self.objective not in OBJECTIVES:
            raise SettingsError(f"unknown objective {self.objective!r}: use one of {', '.join(OBJECTIVES)}")
        if not 0.0 <= self.keep_ratio < 1.0:
            raise SettingsError(f"keep ratio {self.keep_ratio} is not in [0, 1): 0 ranks every token")
        if self.max_batch is not None and self.max_batch < 1:
            raise SettingsError(f"max_batch {self.max_batch} is not a positive number of rows")
        if self.memory_gib is not None and self.memory_gib <= 0:
            raise SettingsError(f"memory_gib {self.memory_gib} is not positive")
        if self.lockstep < 1:
            raise SettingsError(f"lockstep {self.lockstep} is not a positive number of examples")
        if self.lockstep > 1 and not hasattr(self.method, "steps"):
            searches = [m for m, cls in METHODS.items() if hasattr(cls, "steps")]
            raise SettingsError(f"lockstep is for the searches ({', '.join(searches)}), not {self.method.name}")
        if self.dtype not in DTYPES:
            raise SettingsError(f"unknown dtype {self.dtype!r}: use one of {', '.join(DTYPES)}")
        if self.layout not in LAYOUTS:
            raise SettingsError(f"unknown layout {self.layout!r}: use one of {', '.join(LAYOUTS)}")
        if self.engine not in ENGINES:
            raise SettingsError(f"unknown engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        check = getattr(self.method, "check", None)
        if check is not None:
            check(self)  # what the method needs of the rest (llmlingua: a keep ratio)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> PruneConfig:
        """A config from a run's recorded settings (unknown keys are an error, not ignored)."""
        core = {f.name for f in fields(cls)}
        extra = sorted(set(settings) - core - set(all_settings()))
        if extra:
            raise SettingsError(f"unknown pruning settings {extra}: known are {sorted(core | set(all_settings()))}")
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        """What a run records: every setting, flat, with those its method does not use set to None."""
        return self.recorded()

    def recorded(self) -> dict[str, Any]:
        """The core settings, the method's name, and every method's settings (None but this method's)."""
        mine = recorded(self.method)
        return {"method": self.method.name, "objective": self.objective, "keep_ratio": self.keep_ratio,
                "seed": self.seed, "max_batch": self.max_batch, "memory_gib": self.memory_gib, "dtype": self.dtype,
                "lockstep": self.lockstep, "layout": self.layout, **{key: mine.get(key) for key in all_settings()}}

    @classmethod
    def recorded_defaults(cls, method: str) -> dict[str, Any]:
        """What a run of ``method`` records for settings left at their defaults (a record made before a
        setting existed is read as its default)."""
        own = defaults(METHODS[method])
        return {"lockstep": 1, "dtype": "auto", "layout": "plain", "attention": "sdpa",  # as runs made before them
                **{key: own.get(key) for key in all_settings()}}

    def torch_dtype(self, device: str):
        """The torch dtype to load the model in on ``device``."""
        import torch

        if self.dtype == "auto":
            return torch.float32 if device == "cpu" else torch.bfloat16
        return getattr(torch, self.dtype)


def _check_others(method: str, settings: dict[str, Any]) -> None:
    """Settings that belong to another method than ``method`` are checked by that method too, so a
    bad value is a bad value whichever method is chosen."""
    known = all_settings()
    mine = set(settings_of(METHODS[method])) if method in METHODS else set()
    for key, value in settings.items():
        if key in known and key not in mine and value is not None and method in METHODS:
            owner = METHODS[known[key][0]]
            if not settings_of(owner)[key].metadata["path"]:
                make(owner.name, **{key: value})
