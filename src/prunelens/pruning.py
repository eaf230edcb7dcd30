"""Greedy likelihood-preserving deletion, its fast approximation, and baseline orderings.

A rendered example is ``prompt + reasoning + post`` (see ``layout``). Each step deletes the
reasoning token whose removal keeps the objective highest (ties: earliest position):

- ``reason-answer``: mean log-prob of every remaining reasoning token and every post token;
- ``answer``: mean log-prob of the post tokens only.

Exactness without the naive cost: deleting reasoning token ``j`` leaves every position before it
unchanged, so one forward pass of the current sequence gives (a) the log-probs of all unchanged
prefix tokens and (b) their key/value cache. Candidates are scored in groups of consecutive
positions ``[g, g+B)``: the group reuses the cached prefix up to ``p+g-1`` and recomputes only the
rest. Deleting either of two equal adjacent tokens gives the same sequence, so only the first of
such a run is scored. The same primitive (``_Scorer.score_states``) scores the states of any
deletion order, which gives every method an exact objective trajectory.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .layout import Layout, LayoutError, render
from .store import StageStore, shard_of

OBJECTIVES = ("reason-answer", "answer")
GREEDY_METHODS = ("greedy", "greedy-fast")
BASELINES = ("random", "truncate", "surprisal", "attention")
METHODS = GREEDY_METHODS + BASELINES
TIE_TOL = 1e-6  # objectives this close to the best count as tied; the earliest position wins
FAST_SHARE = 0.1  # greedy-fast re-scores this share of the most promising candidates per step
FAST_REFRESH = 10  # ... and every candidate every this many steps
NEIGHBOURS = 4  # ... and the tokens this close to a deletion made since they were last scored


@dataclass
class PruneResult:
    """Deletion order and what was measured along the way, for one example."""

    order: list[int]  # original reasoning positions, in deletion order
    deleted_step: list[int | None]  # per position: 1..N, None if a keep ratio left it in
    trajectory: list[float]  # objective before any deletion, then after each deletion
    first_scores: list[float] | None = None  # objective after deleting each token alone, step 1
    tokens_processed: int = 0  # tokens passed through the model
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return len(self.deleted_step)


def n_to_delete(n: int, keep_ratio: float) -> int:
    """How many of ``n`` tokens go so that ``keep_ratio`` of them stay (rounded to nearest)."""
    if not 0.0 <= keep_ratio <= 1.0:
        raise ValueError(f"keep ratio {keep_ratio} is not between 0 and 1")
    return n - int(round(keep_ratio * n))


def pick(scores: Sequence[float], tie_tol: float = TIE_TOL) -> int:
    """Index of the best score; scores within ``tie_tol`` of the best count as tied, earliest wins."""
    best = max(scores)
    return next(i for i, s in enumerate(scores) if s >= best - tie_tol)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per position: ``logits[..., t, :]`` scores ``targets[..., t]`` (float32)."""
    logits = logits.float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


class _Scorer:
    """Forward passes for one model and objective, counting the tokens it processes."""

    def __init__(self, model, objective: str, max_batch: int | None = None, token_budget: int | None = None):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
        self.hf = model.hf
        self.objective = objective
        self.device = model.device
        self.tokens = 0
        cfg = self.hf.config
        on_cpu = self.device.type == "cpu"
        self.max_batch = max_batch or (16 if on_cpu else 512)
        if token_budget is None:
            vocab = int(cfg.vocab_size)
            kv = 2 * int(cfg.num_hidden_layers) * int(getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)) \
                * int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
            per_token = 3 * vocab * 4 + 2 * kv * model.dtype.itemsize + 16 * int(cfg.hidden_size) * 4
            free = torch.cuda.mem_get_info(self.device)[0] if not on_cpu else 2 * 2**30
            token_budget = max(256, int(0.5 * free / per_token))
        self.token_budget = token_budget

    @torch.inference_mode()
    def full(self, ids: Sequence[int]):
        """Token log-probs of ``ids`` (``tlp[t]`` = log p(ids[t] | ids[:t]), ``tlp[0]`` = 0) and the KV cache."""
        x = torch.tensor([list(ids)], device=self.device)
        out = self.hf(input_ids=x, use_cache=True)
        self.tokens += x.shape[1]
        tlp = torch.zeros(x.shape[1], device=self.device)
        tlp[1:] = token_logprobs(out.logits[0, :-1], x[0, 1:])
        return tlp, out.past_key_values

    @torch.inference_mode()
    def advance(self, ids: Sequence[int], tlp: torch.Tensor, cache, c: int):
        """``full(ids)`` for a sequence that agrees with the cached one on its first ``c + 1`` tokens.

        Reuses the first ``c`` cached positions and recomputes only from position ``c``.
        """
        cache = self._prefix_cache(cache, c, 1)
        x = torch.tensor([list(ids[c:])], device=self.device)
        logits = self.hf(input_ids=x, past_key_values=cache, use_cache=True).logits
        self.tokens += x.shape[1]
        new = torch.zeros(len(ids), device=self.device)
        new[: c + 1] = tlp[: c + 1]
        new[c + 1:] = token_logprobs(logits[0, :-1], x[0, 1:])
        return new, cache

    def objective_of(self, tlp: torch.Tensor, p: int, n: int) -> float:
        """Objective of a sequence whose token log-probs are ``tlp`` (p prompt, n reasoning tokens)."""
        start = p if self.objective == "reason-answer" else p + n
        return float(tlp[start:].mean())

    @torch.inference_mode()
    def score_states(self, ids: Sequence[int], tlp: torch.Tensor, cache, p: int, n: int,
                     deletions: Sequence[Sequence[int]]) -> list[float]:
        """Objective of ``ids`` after deleting each set of reasoning indices in ``deletions``.

        ``tlp`` and ``cache`` come from ``full(ids)``. States are batched in consecutive chunks;
        a chunk recomputes only from its earliest deleted position (minus one token, whose logits
        predict the first changed token) and reuses the cached prefix before it.
        """
        total = len(ids)
        base = torch.tensor(list(ids), device=self.device)
        scores: list[float] = []
        i = 0
        while i < len(deletions):
            chunk, first = [deletions[i]], min(deletions[i])
            while i + len(chunk) < len(deletions) and len(chunk) < self.max_batch:
                nxt = deletions[i + len(chunk)]
                lo = min(first, min(nxt))
                if (len(chunk) + 1) * (total - (p + lo - 1)) > self.token_budget:
                    break
                chunk.append(nxt)
                first = lo
            scores.extend(self._score_chunk(base, tlp, cache, p, n, chunk, p + first - 1))
            i += len(chunk)
        return scores

    def _prefix_cache(self, cache, c: int, rows: int):
        """A new cache holding the first ``c`` positions of ``cache``, repeated over ``rows``."""
        from transformers import DynamicCache

        return DynamicCache(
            ddp_cache_data=[(layer.keys[:, :, :c].expand(rows, -1, -1, -1),
                             layer.values[:, :, :c].expand(rows, -1, -1, -1)) for layer in cache.layers],
            config=self.hf.config)

    def _score_chunk(self, base, tlp, cache, p, n, chunk, c) -> list[float]:
        total = base.shape[0]
        keep = torch.ones(len(chunk), total, dtype=torch.bool, device=self.device)
        for row, gone in enumerate(chunk):
            keep[row, [p + j for j in gone]] = False
        lengths = keep[:, c:].sum(1)
        width = int(lengths.max())
        x = torch.zeros(len(chunk), width, dtype=torch.long, device=self.device)
        for row in range(len(chunk)):
            x[row, : lengths[row]] = base[c:][keep[row, c:]]
        rows = len(chunk)
        past = self._prefix_cache(cache, c, rows)
        logits = self.hf(input_ids=x, past_key_values=past, use_cache=True).logits
        self.tokens += rows * width
        lp = token_logprobs(logits[:, :-1], x[:, 1:])  # lp[:, k] scores new position c + 1 + k
        prefix = float(tlp[p: c + 1].sum())  # unchanged reasoning tokens before the chunk's first change
        scores = []
        for row, gone in enumerate(chunk):
            new_total = total - len(gone)
            new_n = n - len(gone)
            valid = lp[row, : int(lengths[row]) - 1]
            if self.objective == "reason-answer":
                scores.append((prefix + float(valid.sum())) / (new_total - p))
            else:
                post_start = p + new_n - (c + 1)
                scores.append(float(valid[post_start:].mean()))
        return scores


def _sequence(layout: Layout, kept: Sequence[int]) -> list[int]:
    return layout.prompt_ids + [layout.reasoning_ids[k] for k in kept] + layout.post_ids


def _greedy(scorer: _Scorer, layout: Layout, n_delete: int, fast: tuple[float, int] | None,
            progress: Callable[[int], None] | None) -> tuple[list[int], list[float], list[float]]:
    """Greedy deletion, one token per step.

    ``fast`` None scores every candidate at every step (exact). ``fast = (share, refresh)`` is lazy:
    each candidate keeps the objective drop measured when it was last scored. A step re-scores the
    ``share`` of candidates with the smallest remembered drop (at least 4), plus every candidate
    within ``NEIGHBOURS`` tokens of, or equal to, a token deleted since it was last scored (a
    deletion changes the drops of its neighbours and of other copies of itself most), and deletes
    the best of those; every ``refresh`` steps all candidates are re-scored.
    """
    p = len(layout.prompt_ids)
    kept = list(range(len(layout.reasoning_ids)))
    order: list[int] = []
    first_scores: list[float] = []
    ids = _sequence(layout, kept)
    tlp, cache = scorer.full(ids)
    trajectory = [scorer.objective_of(tlp, p, len(kept))]
    drop: dict[int, float] = {}  # original position -> remembered objective drop when deleted
    stale: set[int] = set()  # original positions next to a deletion since they were last scored
    step = 0
    while len(order) < n_delete:
        current = trajectory[-1]
        tokens = [layout.reasoning_ids[k] for k in kept]
        if fast is None or step % fast[1] == 0:
            candidates = list(range(len(kept)))
        else:
            share = max(4, math.ceil(fast[0] * len(kept)))
            promising = sorted(range(len(kept)), key=lambda j: drop[kept[j]])[:share]
            candidates = sorted(set(promising) | {j for j, q in enumerate(kept) if q in stale})
        # Deleting either of two equal adjacent tokens gives the same sequence: score the first only.
        fresh = [j for j in candidates if j == 0 or tokens[j] != tokens[j - 1]]
        computed = dict(zip(fresh, scorer.score_states(ids, tlp, cache, p, len(kept), [[j] for j in fresh])))
        scores = [math.nan] * len(kept)
        chosen = set(candidates)
        for j in candidates:
            scores[j] = computed[j] if j in computed else scores[j - 1] if j - 1 in chosen \
                else current - drop[kept[j - 1]]
            drop[kept[j]] = current - scores[j]
            stale.discard(kept[j])
        if not first_scores:
            first_scores = list(scores)
        j = pick([s if not math.isnan(s) else -math.inf for s in scores])
        trajectory.append(scores[j])
        order.append(kept.pop(j))
        gone = layout.reasoning_ids[order[-1]]
        stale.update(kept[max(0, j - NEIGHBOURS): j + NEIGHBOURS])
        stale.update(q for q in kept if layout.reasoning_ids[q] == gone)
        step += 1
        if len(order) < n_delete:
            ids = _sequence(layout, kept)
            tlp, cache = scorer.advance(ids, tlp, cache, p + j - 1)
        if progress:
            progress(1)
    return order, trajectory, first_scores


def trajectory_of(scorer: _Scorer, layout: Layout, order: Sequence[int]) -> list[float]:
    """Exact objective before any deletion and after each deletion of ``order`` (batched, cached)."""
    ids = layout.ids
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    tlp, cache = scorer.full(ids)
    states = [sorted(order[: s + 1]) for s in range(len(order))]
    return [scorer.objective_of(tlp, p, n)] + scorer.score_states(ids, tlp, cache, p, n, states)


def baseline_order(method: str, model, layout: Layout, seed: int, example_id: str) -> list[int]:
    """Full deletion order of a baseline; one forward pass at most."""
    n = len(layout.reasoning_ids)
    if method == "random":
        return [int(i) for i in np.random.default_rng([seed, zlib.crc32(example_id.encode())]).permutation(n)]
    if method == "truncate":
        return list(range(n - 1, -1, -1))
    if method == "surprisal":
        p = len(layout.prompt_ids)
        tlp, _ = _Scorer(model, "answer").full(layout.ids)
        surprisal = (-tlp[p: p + n]).tolist()
        return sorted(range(n), key=lambda j: surprisal[j])  # stable: ties keep earliest first
    if method == "attention":
        from .features import answer_attention

        received = answer_attention(model, layout)
        return sorted(range(n), key=lambda j: received[j])
    raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")


def prune(model, layout: Layout, method: str = "greedy", objective: str = "reason-answer",
          keep_ratio: float = 0.0, seed: int = 0, example_id: str = "",
          max_batch: int | None = None, fast: tuple[float, int] = (FAST_SHARE, FAST_REFRESH),
          progress: Callable[[int], None] | None = None) -> PruneResult:
    """Rank the reasoning tokens of ``layout`` by ``method`` (see ``METHODS``) under ``objective``.

    ``keep_ratio`` stops once that share of tokens is left (0 ranks them all). ``progress`` is
    called with the number of tokens deleted at each step.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    start = time.perf_counter()
    scorer = _Scorer(model, objective, max_batch=max_batch)
    n = len(layout.reasoning_ids)
    n_delete = n_to_delete(n, keep_ratio)
    first_scores: list[float] | None = None
    if method in GREEDY_METHODS:
        order, trajectory, first_scores = _greedy(
            scorer, layout, n_delete, None if method == "greedy" else fast, progress)
    else:
        order = baseline_order(method, model, layout, seed, example_id)[:n_delete]
        trajectory = trajectory_of(scorer, layout, order)
        if progress:
            progress(len(order))
    deleted_step: list[int | None] = [None] * n
    for step, position in enumerate(order, start=1):
        deleted_step[position] = step
    return PruneResult(order=order, deleted_step=deleted_step, trajectory=trajectory,
                       first_scores=first_scores, tokens_processed=scorer.tokens,
                       seconds=time.perf_counter() - start)


@dataclass
class NaiveReference:
    """The plain algorithm: a full forward pass of every candidate sequence (batched), no cache.

    The yardstick for ``greedy``: tests assert equal orders, the benchmark compares the cost.
    """

    model: object
    objective: str = "reason-answer"
    batch: int = 16
    tokens: int = field(default=0, init=False)

    @torch.inference_mode()
    def _objectives(self, sequences: list[list[int]], p: int, n_post: int) -> list[float]:
        scores = []
        for i in range(0, len(sequences), self.batch):
            x = torch.tensor(sequences[i: i + self.batch], device=self.model.device)
            lp = token_logprobs(self.model.hf(input_ids=x).logits[:, :-1], x[:, 1:])  # lp[:, t]: position t+1
            self.tokens += x.numel()
            start = p if self.objective == "reason-answer" else x.shape[1] - n_post
            scores.extend(lp[:, start - 1:].mean(1).tolist())
        return scores

    def run(self, layout: Layout, n_delete: int | None = None) -> tuple[list[int], list[float]]:
        """Deletion order and objective trajectory of exact greedy deletion, the slow way."""
        p, a = len(layout.prompt_ids), len(layout.post_ids)
        kept = list(range(len(layout.reasoning_ids)))
        n_delete = len(kept) if n_delete is None else n_delete
        trajectory = self._objectives([_sequence(layout, kept)], p, a)
        order: list[int] = []
        while len(order) < n_delete:
            scores = self._objectives([_sequence(layout, kept[:j] + kept[j + 1:]) for j in range(len(kept))], p, a)
            j = pick(scores)
            trajectory.append(scores[j])
            order.append(kept.pop(j))
        return order, trajectory


def result_tables(example, layout: Layout, result: PruneResult, model_name: str, method: str,
                  objective: str, keep_ratio: float, seed: int) -> dict[str, pd.DataFrame]:
    """One ``examples`` row and the ``tokens`` rows (one per reasoning token) for a pruned example."""
    n = result.n
    examples = pd.DataFrame([{
        "example_id": example.id, "question": example.question, "reasoning": example.reasoning,
        "answer": example.answer, "model": model_name, "method": method, "objective": objective,
        "keep_ratio": keep_ratio, "seed": seed, "n_reasoning": n,
        "prompt_ids": layout.prompt_ids, "reasoning_ids": layout.reasoning_ids, "post_ids": layout.post_ids,
        "order": result.order, "objective_trajectory": result.trajectory,
        "tokens_processed": result.tokens_processed, "seconds": result.seconds,
    }])
    before = result.trajectory[0]
    tokens = pd.DataFrame({
        "example_id": example.id,
        "position": np.arange(n),
        "token_id": layout.reasoning_ids,
        "token_text": [example.reasoning[a:b] for a, b in layout.spans],
        "char_start": [a for a, _ in layout.spans],
        "char_end": [b for _, b in layout.spans],
        "deleted_step": pd.array(result.deleted_step, dtype="Int64"),
        "rank_norm": [s / n if s is not None else None for s in result.deleted_step],
        "drop_first": [before - s for s in result.first_scores] if result.first_scores else None,
    })
    tokens["rank_norm"] = tokens["rank_norm"].astype("Float64")
    tokens["drop_first"] = tokens["drop_first"].astype("Float64")
    return {"examples": examples, "tokens": tokens}


def prune_examples(model, examples, out: str | Path, method: str = "greedy",
                   objective: str = "reason-answer", keep_ratio: float = 0.0, seed: int = 0,
                   shard: str | None = None, skip_bad: bool = False, show_progress: bool = True,
                   **options) -> dict[str, object]:
    """Prune ``examples`` into ``out``/{examples,tokens}.parquet, resuming finished examples.

    Returns a summary: ``done`` (pruned now), ``resumed`` (already there), ``skipped`` (messages).
    Bad examples (too long, empty) stop the run with LayoutError, or are skipped with ``skip_bad``.
    """
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    n_to_delete(1, keep_ratio)  # validates the ratio before any work
    store = StageStore(out, "prune", ("tokens", "examples"))
    store.check_config({"model": model.name, "method": method, "objective": objective,
                        "keep_ratio": keep_ratio, "seed": seed})
    mine = shard_of(examples, shard)
    finished = store.done()
    todo = [e for e in mine if e.id not in finished]
    summary: dict[str, object] = {"done": 0, "resumed": len(mine) - len(todo), "skipped": []}
    bar = tqdm(todo, desc=f"prune {method}", unit="ex", disable=not show_progress)
    for example in bar:
        try:
            layout = render(example, model.tokenizer, model.max_length)
        except LayoutError as err:
            if not skip_bad:
                raise
            summary["skipped"].append(str(err))
            continue
        steps = tqdm(total=n_to_delete(len(layout.reasoning_ids), keep_ratio), desc=example.id,
                     unit="tok", leave=False, disable=not show_progress)
        result = prune(model, layout, method, objective, keep_ratio, seed, example.id,
                       progress=steps.update, **options)
        steps.close()
        store.write(example.id, result_tables(example, layout, result, model.name, method,
                                              objective, keep_ratio, seed))
        summary["done"] += 1
    store.merge()
    return summary
