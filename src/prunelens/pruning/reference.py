"""The naive algorithm: a full forward pass of every candidate sequence, no cache. The yardstick.

Tests assert that ``greedy`` gives its orders; the benchmark compares the cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..layout import Layout
from ..ops import pick, pruned_ids, token_logprobs


@dataclass
class NaiveReference:
    """Exact greedy deletion, the slow way: every candidate scored by its own full forward pass."""

    model: object
    objective: str = "reason-answer"
    batch: int = 16
    tokens: int = field(default=0, init=False)

    @torch.inference_mode()
    def objectives(self, sequences: list[list[int]], p: int, n_post: int) -> list[float]:
        """The objective of each full sequence (``p`` prompt tokens, ``n_post`` post tokens); batches
        hold sequences of one length, so no padding enters a score."""
        scores = [0.0] * len(sequences)
        lengths = sorted({len(s) for s in sequences})
        for length in lengths:
            same = [i for i, s in enumerate(sequences) if len(s) == length]
            for at in range(0, len(same), self.batch):
                rows = same[at: at + self.batch]
                x = torch.tensor([sequences[i] for i in rows], device=self.model.device)
                lp = token_logprobs(self.model.hf(input_ids=x).logits[:, :-1], x[:, 1:])  # lp[:, t]: position t+1
                self.tokens += x.numel()
                start = p if self.objective == "reason-answer" else x.shape[1] - n_post
                for i, value in zip(rows, lp[:, start - 1:].mean(1).tolist()):
                    scores[i] = value
        return scores

    def candidate_scores(self, layout: Layout, kept: list[int]) -> list[float]:
        """The objective after deleting each of the ``kept`` reasoning positions alone."""
        prompt, reasoning, post = layout.prompt_ids, layout.reasoning_ids, layout.post_ids
        return self.objectives([pruned_ids(prompt, reasoning, post, kept[:j] + kept[j + 1:]) for j in range(len(kept))],
                               len(prompt), len(post))

    @staticmethod
    def tokens_for(layout: Layout) -> int:
        """Tokens the candidates of a full naive run over ``layout`` pass through the model (arithmetic, no
        run): at step s, n - s candidate sequences of total - 1 - s tokens each."""
        n, total = len(layout.reasoning_ids), len(layout.ids)
        return sum((n - s) * (total - 1 - s) for s in range(n))

    def trajectory(self, layout: Layout, order: list[int]) -> list[float]:
        """Objective before any deletion and after each deletion of ``order``, one full pass per state."""
        p, a, n = len(layout.prompt_ids), len(layout.post_ids), len(layout.reasoning_ids)
        states = [pruned_ids(layout.prompt_ids, layout.reasoning_ids, layout.post_ids,
                             [k for k in range(n) if k not in set(order[:s])]) for s in range(len(order) + 1)]
        return [self.objectives([ids], p, a)[0] for ids in states]

    def run(self, layout: Layout, n_delete: int | None = None,
            units: list[list[int]] | None = None) -> tuple[list[int], list[float]]:
        """Deletion order and objective trajectory of exact greedy deletion.

        ``units``: groups of reasoning positions deleted together (``Layout.words``; default: each
        token alone). A unit's tokens enter the order in position order, each partial state scored;
        the last unit is cut where ``n_delete`` tokens are gone.
        """
        prompt, reasoning, post = layout.prompt_ids, layout.reasoning_ids, layout.post_ids
        p, a = len(prompt), len(post)
        kept = list(range(len(reasoning)))
        units = [[k] for k in kept] if units is None else [list(u) for u in units]
        n_delete = len(kept) if n_delete is None else n_delete
        trajectory = self.objectives([pruned_ids(prompt, reasoning, post, kept)], p, a)
        order: list[int] = []
        while len(order) < n_delete:
            scores = self.objectives([pruned_ids(prompt, reasoning, post, [k for k in kept if k not in u])
                                      for u in units], p, a)
            j = pick(scores)
            unit = units.pop(j)
            for k in unit[: n_delete - len(order)]:
                kept.remove(k)
                order.append(k)
                trajectory.append(scores[j] if k == unit[-1] else
                                  self.objectives([pruned_ids(prompt, reasoning, post, kept)], p, a)[0])
        return order, trajectory
