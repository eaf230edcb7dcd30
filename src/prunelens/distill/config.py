"""``DistillConfig``: every setting of a distillation run, validated once, before any model loads.

A *condition* is one training set: a method's run read at one keep ratio (labelled
``METHOD@RATIO``, e.g. ``greedy@0.8``) or a control, ``full`` (the unpruned chain, keep ratio 1)
or ``answer-only`` (no reasoning, keep ratio 0). ``conditions`` expands the runs and keep ratios
into them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import SettingsError
from ..generation.sampler import STYLES

CONTROLS = {"full": 1.0, "answer-only": 0.0}  # control conditions and the keep ratio each stands for


def label(method: str, keep_ratio: float) -> str:
    """A condition's name: ``METHOD@RATIO`` (``greedy@0.8``), or the control's own name."""
    return method if method in CONTROLS else f"{method}@{keep_ratio:g}"


def parse_label(condition: str) -> tuple[str, float]:
    """``(method, keep_ratio)`` of a condition's name (the inverse of ``label``)."""
    if condition in CONTROLS:
        return condition, CONTROLS[condition]
    method, sep, ratio = condition.rpartition("@")
    try:
        value = float(ratio)
    except ValueError:
        value = -1.0
    if not sep or not method or not 0.0 < value <= 1.0:
        raise SettingsError(f"condition {condition!r} is not METHOD@RATIO (a keep ratio in (0, 1]) or a control "
                         f"({', '.join(CONTROLS)})")
    return method, value


def conditions(runs: Mapping[str, str | Path], keep_ratios: tuple[float, ...]) -> dict[str, tuple[str, float]]:
    """``{condition: (run, keep_ratio)}``: a run named ``NAME`` at every keep ratio, one named
    ``NAME@RATIO`` (a text run compressed to one ratio, say) at that ratio only."""
    if not runs:
        raise SettingsError("give at least one run to distil from")
    out: dict[str, tuple[str, float]] = {}
    for name, run in runs.items():
        if "@" in name:
            method, ratio = parse_label(name)
            pairs = [(method, ratio)]
        else:
            pairs = [(name, ratio) for ratio in keep_ratios]
        for method, ratio in pairs:
            if method in CONTROLS:
                raise SettingsError(f"{method} is a control's name: name the run otherwise")
            if label(method, ratio) in out:
                raise SettingsError(f"condition {label(method, ratio)} is given twice")
            out[label(method, ratio)] = (str(run), ratio)
    return out


@dataclass(frozen=True)
class EvalSet:
    """Problems a student is evaluated on: ``source`` as ``load_examples`` reads it, in a prompt ``style``.

    The problems are clean (``data.drop_twins``): none is the same problem as a training problem
    (for GSM-Symbolic: the same template with the same numbers, whatever the names), and none
    repeats another of the set.
    """

    name: str
    source: str
    style: str = "chat"
    limit: int = 500
    seed: int = 0  # for generated sources (gsm-symbolic)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise SettingsError(f"eval set {self.name}: unknown style {self.style!r}: use one of {', '.join(STYLES)}")
        if self.limit < 1:
            raise SettingsError(f"eval set {self.name}: limit {self.limit} is not a positive number of problems")


@dataclass(frozen=True)
class DistillConfig:
    """Settings of a distillation run: training sets, students, evaluation.

    ``keep_ratios``: each run is read at every one of them (a condition each); the controls ``full``
    and ``answer-only`` are always trained too. ``student``: embedded name, hub id or local
    directory; ``lora``: train LoRA adapters (rank ``lora_rank``) instead of every weight;
    ``train_limit``: at most this many shared problems per training set; ``seeds``: one student per
    condition and seed, except where ``condition_seeds`` (``(("greedy@0.8", (0, 1, 2)), ...)``) says
    otherwise; a key there is a condition (``greedy@0.8``, ``full``), a method (``greedy``: every keep
    ratio) or a keep ratio (``@0.8``: every method), the most specific one winning. ``cpu_bf16``: run
    a CPU training's forward and backward passes in bf16 autocast over float32 weights, as CUDA
    always does (about 1.5 times faster on CPUs with bf16 units; not bit-equal to float32).
    """

    keep_ratios: tuple[float, ...] = (0.5,)
    student: str = "smollm2-135m"
    lora: bool = False
    lora_rank: int = 16
    epochs: float = 2.0
    learning_rate: float = 5e-5
    batch_size: int = 8
    seeds: tuple[int, ...] = (0,)
    condition_seeds: tuple[tuple[str, tuple[int, ...]], ...] = ()
    train_limit: int | None = None
    max_new_tokens: int = 256
    eval_batch: int = 16
    kl_texts: int = 100
    save_steps: int = 50
    cpu_bf16: bool = False
    eval_sets: tuple[EvalSet, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.keep_ratios or not all(0.0 < r < 1.0 for r in self.keep_ratios):
            raise SettingsError(f"keep ratios {list(self.keep_ratios)} are not in (0, 1)")
        if len(set(self.keep_ratios)) != len(self.keep_ratios):
            raise SettingsError(f"keep ratios repeat: {list(self.keep_ratios)}")
        for name in ("epochs", "learning_rate"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} {getattr(self, name)} is not positive")
        for name in ("batch_size", "max_new_tokens", "eval_batch", "save_steps", "lora_rank", "kl_texts"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} {getattr(self, name)} is not a positive number")
        if not self.seeds or not all(seeds for _, seeds in self.condition_seeds):
            raise SettingsError("give at least one seed")
        named = [name for name, _ in self.condition_seeds]
        if len(set(named)) != len(named):
            raise SettingsError(f"seeds given twice for a condition: {named}")
        for name in named:
            if name.startswith("@"):
                parse_label("x" + name)
            elif "@" in name:
                parse_label(name)
        if self.train_limit is not None and self.train_limit < 1:
            raise SettingsError(f"train_limit {self.train_limit} is not a positive number of problems")
        names = [e.name for e in self.eval_sets]
        if len(set(names)) != len(names):
            raise SettingsError(f"eval set names repeat: {names}")

    def seeds_of(self, condition: str) -> tuple[int, ...]:
        """The seeds of one condition's students (the most specific ``condition_seeds`` key wins)."""
        given = dict(self.condition_seeds)
        method, ratio = parse_label(condition)
        for key in (condition, method, f"@{ratio:g}"):
            if key in given:
                return given[key]
        return self.seeds

    def unknown_seed_keys(self, names: set[str]) -> list[str]:
        """Keys of ``condition_seeds`` that name no condition, method or keep ratio of ``names``."""
        known = set(names)
        for name in names:
            method, ratio = parse_label(name)
            known |= {method, f"@{ratio:g}"}
        return sorted(key for key, _ in self.condition_seeds if key not in known)

    def recorded(self) -> dict:
        """What a distillation run records in ``distill.json`` (compared on resume), as JSON reads it back."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_recorded(cls, record: dict) -> DistillConfig:
        """The config a ``distill.json`` holds (its other keys, such as ``runs``, ignored)."""
        settings = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        settings["eval_sets"] = tuple(EvalSet(**e) for e in settings.get("eval_sets", ()))
        for key in ("keep_ratios", "seeds"):
            if key in settings:
                settings[key] = tuple(settings[key])
        settings["condition_seeds"] = tuple((k, tuple(v)) for k, v in settings.get("condition_seeds", ()))
        return cls(**settings)
