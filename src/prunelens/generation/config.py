"""``GenerateConfig``: every setting of a generation run, validated once, before any model loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import SettingsError
from ..layout import LAYOUTS
from .sampler import BACKENDS, STYLES


@dataclass(frozen=True)
class GenerateConfig:
    """Rejection sampling as published: up to ``samples`` replies per problem at ``temperature``, the
    first correct one kept. ``round_size`` samples of a problem are drawn side by side, and a problem
    stops after the round that found a correct one (every drawn sample is recorded; the chain's
    ``attempts`` counts those up to the kept one). ``style`` (``sampler.STYLES``) and ``layout``
    (``layout.LAYOUTS``) make the prompt; ``seed`` seeds each round (from the problem's id, so a
    problem's samples do not depend on which others run); ``backend``: transformers or vllm."""

    samples: int = field(default=10, metadata={"help": "at most this many samples per problem (published: 10)"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature, no top-k or top-p (published: 0.7)"})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens per sample at most"})
    round_size: int = field(default=5, metadata={"help": "samples of a problem drawn side by side; a problem stops after "
                                                         "the round that found a correct one"})
    style: str = field(default="instruct", metadata={"help": "prompt: chat (the question), instruct (asked to end "
                                                             "with an Answer: line) or plain (no template)",
                                                     "choices": STYLES})
    layout: str = field(default="auto", metadata={"help": "auto (a think block where the template opens one), think "
                                                          "or plain", "choices": LAYOUTS})
    seed: int = field(default=0, metadata={"help": "seed of the samples (each problem's rounds seeded from its id)"})
    backend: str = field(default="transformers", metadata={"help": "transformers, or vllm (a GPU and vLLM needed)",
                                                           "choices": BACKENDS})

    def __post_init__(self) -> None:
        for name in ("samples", "max_new_tokens", "round_size"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} {getattr(self, name)} is not a positive number")
        if not 0 <= self.temperature <= 5:
            raise SettingsError(f"--temperature {self.temperature} is not in [0, 5]")
        if self.temperature == 0 and self.samples > 1:
            raise SettingsError(f"--samples {self.samples} at temperature 0 would all be the same reply: give a "
                                "temperature above 0, or --samples 1")
        if self.style not in STYLES:
            raise SettingsError(f"unknown --style {self.style!r}: use one of {', '.join(STYLES)}")
        if self.layout not in LAYOUTS:
            raise SettingsError(f"unknown --layout {self.layout!r}: use one of {', '.join(LAYOUTS)}")
        if self.backend not in BACKENDS:
            raise SettingsError(f"unknown --backend {self.backend!r}: use one of {', '.join(BACKENDS)}")

    def to_dict(self) -> dict:
        return asdict(self)
