"""Distillation: students fine-tuned on each method's pruned chains, and how well they solve problems.

One module per job: ``config`` (``DistillConfig``, ``EvalSet``, conditions), ``data`` (training sets
and their encoding), ``train`` (one student), ``evaluate`` (generation, answers, intervals, paired
tests, hedging, drift), ``stats`` (planned comparisons over problems and seeds, Holm), ``report``
(a directory's tables from its files alone), ``stage`` (every condition, seed and eval set into one
directory).
Importing this package imports no torch.
"""

from __future__ import annotations

from .config import DistillConfig, EvalSet

__all__ = ["DistillConfig", "EvalSet", "distill", "write_report"]


def __getattr__(name: str):
    if name == "distill":
        from .stage import distill

        return distill
    if name == "write_report":
        from .report import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
