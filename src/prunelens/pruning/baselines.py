"""Ordering baselines: one order from at most one forward pass; the stage scores its states exactly.

- ``random``: a seeded permutation (seed and example id);
- ``truncate``: from the end of the chain;
- ``surprisal``: lowest surprisal (``-log p(token | before)``) deleted first;
- ``attention``: least attention received from the post tokens (mean over layers and heads) first;
- ``h2o``: heavy hitters (H2O): least attention received in total, summed over every later query,
  layer and head (the cumulative score H2O keeps per cached key), first.

LLMLingua's compression is in ``llmlingua``.

Sorting is stable, so ties keep the earliest position first.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar

from .registry import Ordering, Ranking, register


@dataclass(frozen=True)
class Random(Ordering):
    name: ClassVar[str] = "random"
    help: ClassVar[str] = "a seeded random order"

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        import numpy as np

        rng = np.random.default_rng([config.seed, zlib.crc32(example_id.encode())])
        return Ranking([int(i) for i in rng.permutation(len(layout.reasoning_ids))][:n_delete])


@dataclass(frozen=True)
class Truncate(Ordering):
    name: ClassVar[str] = "truncate"
    help: ClassVar[str] = "delete from the end of the chain"

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        n = len(layout.reasoning_ids)
        return Ranking(list(range(n - 1, n - 1 - n_delete, -1)))


@dataclass(frozen=True)
class Surprisal(Ordering):
    name: ClassVar[str] = "surprisal"
    help: ClassVar[str] = "delete the least surprising tokens first"

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
        state = engine.state(layout.ids, p, len(layout.post_ids))
        surprisal = (-state.tlp[p: p + n]).tolist()
        return Ranking(sorted(range(n), key=lambda j: surprisal[j])[:n_delete])


@dataclass(frozen=True)
class Attention(Ordering):
    name: ClassVar[str] = "attention"
    help: ClassVar[str] = "delete the tokens the answer attends to least first"

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        from ..hooked import answer_attention

        received = answer_attention(engine.model, layout)
        return Ranking(sorted(range(len(received)), key=lambda j: received[j])[:n_delete])


@dataclass(frozen=True)
class HeavyHitters(Ordering):
    name: ClassVar[str] = "h2o"
    help: ClassVar[str] = "heavy hitters: delete the tokens with the least attention received from all later tokens first"

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        from ..hooked import sequence_features
        from ..schema import FeatureName

        p, n, total = len(layout.prompt_ids), len(layout.reasoning_ids), len(layout)
        columns = sequence_features(engine.model, layout.ids, p, n, families=("attn",))
        # attn_later is a mean over the later queries, layers and heads: times their count, the sum
        mean = columns[str(FeatureName("attn_later", mean=True))]
        received = [float(mean[j]) * (total - 1 - (p + j)) for j in range(n)]
        return Ranking(sorted(range(n), key=lambda j: received[j])[:n_delete])


for _method in (Random, Truncate, Surprisal, Attention, HeavyHitters):
    register(_method)
