"""Ordering baselines: one order from at most one forward pass; the stage scores its states exactly.

- ``random``: a seeded permutation (seed and example id);
- ``truncate``: from the end of the chain;
- ``surprisal``: lowest surprisal (``-log p(token | before)``) deleted first;
- ``attention``: least attention received from the post tokens (mean over layers and heads) first.

Sorting is stable, so ties keep the earliest position first.
"""

from __future__ import annotations

import zlib

from .registry import Ranking, register


class Random:
    name = "random"
    help = "a seeded random order"
    settings = ("trajectory",)

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        import numpy as np

        rng = np.random.default_rng([config.seed, zlib.crc32(example_id.encode())])
        return Ranking([int(i) for i in rng.permutation(len(layout.reasoning_ids))][:n_delete])


class Truncate:
    name = "truncate"
    help = "delete from the end of the chain"
    settings = ("trajectory",)

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        n = len(layout.reasoning_ids)
        return Ranking(list(range(n - 1, n - 1 - n_delete, -1)))


class Surprisal:
    name = "surprisal"
    help = "delete the least surprising tokens first"
    settings = ("trajectory",)

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
        state = engine.state(layout.ids, p, len(layout.post_ids))
        surprisal = (-state.tlp[p: p + n]).tolist()
        return Ranking(sorted(range(n), key=lambda j: surprisal[j])[:n_delete])


class Attention:
    name = "attention"
    help = "delete the tokens the answer attends to least first"
    settings = ("trajectory",)

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        from ..features import answer_attention

        received = answer_attention(engine.model, layout)
        return Ranking(sorted(range(len(received)), key=lambda j: received[j])[:n_delete])


for _method in (Random(), Truncate(), Surprisal(), Attention()):
    register(_method)
