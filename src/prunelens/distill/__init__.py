"""Distillation: students fine-tuned on each method's pruned chains, and how well they solve problems.

One module per job: ``config`` (``DistillConfig``, ``EvalSet``), ``data`` (training sets and their
encoding), ``train`` (one student), ``evaluate`` (generation, answers, intervals, paired tests,
hedging, drift), ``stage`` (every condition, seed and eval set into one directory).
Importing this package imports no torch.
"""

from __future__ import annotations

from .config import DistillConfig, EvalSet

__all__ = ["DistillConfig", "EvalSet", "distill"]


def __getattr__(name: str):
    if name == "distill":
        from .stage import distill

        return distill
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
