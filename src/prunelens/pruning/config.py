"""``PruneConfig``: every setting of a pruning run, validated once, before any model is loaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

OBJECTIVES = ("reason-answer", "answer")
DTYPES = ("auto", "float32", "bfloat16", "float16")
TRAJECTORIES = ("grid", "full")
RESOURCE_SETTINGS = ("max_batch", "memory_gib", "lockstep")  # change speed, not results: a resumed run may change them
METHOD_SETTINGS = ("fast_share", "fast_refresh", "fast_neighbours", "batch_share", "trajectory", "pruner", "segment_tokens",
                   "compressed", "rewriter", "passes")  # recorded only for the methods that use them


@dataclass(frozen=True)
class PruneConfig:
    """Settings of a pruning run; ``PruneConfig(method="greedy-fast", keep_ratio=0.5)``.

    ``fast_*`` tune greedy-fast and ``batch_share`` greedy-batch (see ``search``); ``max_batch`` caps packed rows per forward pass and
    ``memory_gib`` sets the engine's memory budget (default 2 GiB on CPU, 60% of free GPU memory);
    ``lockstep``: the searches (greedy, greedy-fast) of this many examples run side by side, their
    candidates scored in the same passes (fuller passes in late steps, on a GPU above all);
    ``dtype`` ``auto`` is float32 on CPU and bfloat16 on CUDA. ``trajectory``: a method that returns
    only an order (the baselines) has its states scored at every 0.05 of keep ratio and at its last
    state (``grid``, NaN between) or after every deletion (``full``); searches always record all.
    ``pruner``: the ``learned`` method's pruner directory (None: the one that ships for the model);
    ``passes``: ``learned`` ranks in this many passes, each on the chain the earlier ones left;
    ``segment_tokens``: ``llmlingua``'s window and ``llmlingua-segments``' segment length in tokens; ``compressed``: ``import``'s
    JSONL file; ``rewriter``: ``rewrite``'s model (None: the pruner itself).
    """

    method: str = "greedy"
    objective: str = "reason-answer"
    keep_ratio: float = 0.0
    seed: int = 0
    fast_share: float = 0.05
    fast_refresh: int = 20
    fast_neighbours: int = 4
    batch_share: float = 0.1
    max_batch: int | None = None
    memory_gib: float | None = None
    dtype: str = "auto"
    trajectory: str = "grid"
    pruner: str | None = None
    segment_tokens: int = 20
    compressed: str | None = None
    rewriter: str | None = None
    passes: int = 1
    lockstep: int = 1

    def __post_init__(self) -> None:
        from .registry import METHODS

        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}: use one of {', '.join(OBJECTIVES)}")
        if not 0.0 <= self.keep_ratio < 1.0:
            raise ValueError(f"keep ratio {self.keep_ratio} is not in [0, 1): 0 ranks every token")
        if not 0.0 < self.fast_share <= 1.0:
            raise ValueError(f"fast_share {self.fast_share} is not in (0, 1]")
        if not 0.0 < self.batch_share < 1.0:
            raise ValueError(f"batch_share {self.batch_share} is not in (0, 1)")
        if self.fast_refresh < 1 or self.fast_neighbours < 0:
            raise ValueError("fast_refresh must be at least 1 and fast_neighbours at least 0")
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch {self.max_batch} is not a positive number of rows")
        if self.memory_gib is not None and self.memory_gib <= 0:
            raise ValueError(f"memory_gib {self.memory_gib} is not positive")
        if self.trajectory not in TRAJECTORIES:
            raise ValueError(f"unknown trajectory {self.trajectory!r}: use one of {', '.join(TRAJECTORIES)}")
        if self.passes < 1:
            raise ValueError(f"passes {self.passes} is not a positive number")
        if self.lockstep < 1:
            raise ValueError(f"lockstep {self.lockstep} is not a positive number of examples")
        if self.lockstep > 1 and not hasattr(METHODS[self.method], "steps"):
            raise ValueError(f"lockstep is for the searches ({', '.join(m for m in METHODS if hasattr(METHODS[m], 'steps'))}), "
                             f"not {self.method}")
        if self.segment_tokens < 1:
            raise ValueError(f"segment_tokens {self.segment_tokens} is not a positive number of tokens")
        for setting, method in (("pruner", "learned"), ("compressed", "import"), ("rewriter", "rewrite")):
            if getattr(self, setting) is not None and self.method != method:
                raise ValueError(f"{setting} is for --method {method}, not {self.method}")
        if self.method == "import" and self.compressed is None:
            raise ValueError("--method import needs --compressed FILE (JSONL: id, keep_ratio, reasoning)")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}: use one of {', '.join(DTYPES)}")

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> PruneConfig:
        """A config from a run's recorded settings (unknown keys are an error, not ignored)."""
        known = {f.name for f in fields(cls)}
        extra = sorted(set(settings) - known)
        if extra:
            raise ValueError(f"unknown pruning settings {extra}: known are {sorted(known)}")
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def recorded(self) -> dict[str, Any]:
        """What a run records: every setting, with those its method does not use set to None."""
        return _as_recorded(self.method, asdict(self))

    @classmethod
    def recorded_defaults(cls, method: str) -> dict[str, Any]:
        """What a run of ``method`` records for settings left at their defaults (no validation: a
        method may need a setting that has none)."""
        return _as_recorded(method, {f.name: f.default for f in fields(cls)})

    def torch_dtype(self, device: str):
        """The torch dtype to load the model in on ``device``."""
        import torch

        if self.dtype == "auto":
            return torch.float32 if device == "cpu" else torch.bfloat16
        return getattr(torch, self.dtype)


def _as_recorded(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    from .registry import METHODS

    uses = METHODS[method].settings
    return {k: (None if k in METHOD_SETTINGS and k not in uses else v) for k, v in settings.items()}
