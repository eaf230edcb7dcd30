"""``DistillConfig``: every setting of a distillation run, validated once, before any model loads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

STYLES = ("chat", "instruct", "plain")  # prompt styles of evaluation (distill.evaluate.generate)


@dataclass(frozen=True)
class EvalSet:
    """Problems a student is evaluated on: ``source`` as ``load_examples`` reads it, in a prompt ``style``.

    Problems that any training set holds (same question) are left out, so an in-distribution set
    from the training source is held out by construction.
    """

    name: str
    source: str
    style: str = "chat"
    limit: int = 500
    seed: int = 0  # for generated sources (gsm-symbolic)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"eval set {self.name}: unknown style {self.style!r}: use one of {', '.join(STYLES)}")
        if self.limit < 1:
            raise ValueError(f"eval set {self.name}: limit {self.limit} is not a positive number of problems")


@dataclass(frozen=True)
class DistillConfig:
    """Settings of a distillation run: training sets, students, evaluation.

    ``keep_ratio``: the chain each method's run keeps (controls ``full`` and ``answer-only`` are
    always trained too); ``student``: embedded name, hub id or local directory; ``lora``: train
    LoRA adapters (rank ``lora_rank``) instead of every weight; ``train_limit``: at most this many
    shared problems per training set; ``seeds``: one student per condition and seed, except for the
    conditions ``condition_seeds`` names (``(("greedy", (0, 1)), ...)``), which get their own seeds.
    """

    keep_ratio: float = 0.5
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
    eval_sets: tuple[EvalSet, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"keep ratio {self.keep_ratio} is not in (0, 1]")
        for name in ("epochs", "learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} {getattr(self, name)} is not positive")
        for name in ("batch_size", "max_new_tokens", "eval_batch", "save_steps", "lora_rank", "kl_texts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)} is not a positive number")
        if not self.seeds or not all(seeds for _, seeds in self.condition_seeds):
            raise ValueError("give at least one seed")
        named = [name for name, _ in self.condition_seeds]
        if len(set(named)) != len(named):
            raise ValueError(f"seeds given twice for a condition: {named}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ValueError(f"train_limit {self.train_limit} is not a positive number of problems")
        names = [e.name for e in self.eval_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval set names repeat: {names}")

    def seeds_of(self, condition: str) -> tuple[int, ...]:
        """The seeds of one condition's students."""
        return dict(self.condition_seeds).get(condition, self.seeds)

    def recorded(self) -> dict:
        """What a distillation run records in ``distill.json`` (compared on resume), as JSON reads it back."""
        return json.loads(json.dumps(asdict(self)))
