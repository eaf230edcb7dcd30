"""The scoring engine: exact objectives of many candidate states of one sequence, with little model work.

A ``State`` holds one forward pass over a sequence ``S`` of ``T`` tokens (``p`` prompt, ``n``
reasoning, ``a`` post): every position's final hidden state and key/value cache (all but the last
position, which predicts nothing), and ``tlp[t] = log p(S[t] | S[:t])``.

A candidate is ``S`` with a set ``D`` of reasoning positions deleted. It agrees with ``S`` before
``c = p + min(D)``, so there its log-probs, hidden states and cache are those of the state. The
token that now stands at ``c`` is predicted by the cached hidden state at ``c - 1`` (the LM head on
one vector). Only the new tokens from ``c`` to the second-to-last need the model: the candidate's
*segment*, ``T - |D| - 1 - c`` tokens. That is the lower bound of this scheme, and what it does:

- segments of many candidates are packed into rows of one width (first fit, longest first); each
  row attends to the shared prefix cache through a 4D additive mask (a segment sees the cache
  before its own ``c`` and its own earlier tokens) with explicit ``position_ids`` ``c, c+1, ...``;
- the LM head runs only where the objective needs a log-prob, in slices, with a float32
  log-sum-exp; objectives are summed on the device and copied to the host once per call;
- rows per forward pass come from a memory budget that counts what is really materialised: the
  prefix cache is concatenated per row, eager attention keeps a float32 score matrix per head.

``Engine.tokens`` counts the slots passed through the model (padding included); ``Engine.useful``
counts the lower bound, so their ratio is the packing overhead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..ops import token_logprobs
from .config import OBJECTIVES

DEFAULT_MEMORY_GIB = {"cpu": 2.0}  # CUDA: 60% of the free memory
HEAD_SHARE = 0.25  # share of the memory budget for one slice of LM-head logits


@dataclass
class State:
    """One forward pass over ``ids`` = ``p`` prompt + ``n`` reasoning + ``a`` post tokens."""

    ids: list[int]
    p: int
    a: int
    tlp: torch.Tensor  # [T] float32, tlp[0] = 0
    hidden: torch.Tensor  # [T - 1, d] final (normed) hidden states
    cache: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, kv_heads, T - 1, head_dim]

    @property
    def n(self) -> int:
        return len(self.ids) - self.p - self.a


class Engine:
    """Forward passes for one model and objective, counting the tokens it processes."""

    def __init__(self, model, objective: str = "reason-answer", max_rows: int | None = None,
                 memory_gib: float | None = None):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
        self.model = model
        self.hf = model.hf
        self.objective = objective
        self.device = model.device
        self.dtype = model.dtype
        self.decoder = self.hf.get_decoder()
        self.head = self.hf.get_output_embeddings()
        config = self.hf.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.max_rows = max_rows
        if memory_gib is None:
            memory_gib = DEFAULT_MEMORY_GIB["cpu"] if self.device.type == "cpu" \
                else 0.6 * torch.cuda.mem_get_info(self.device)[0] / 2**30
        self.budget = int(memory_gib * 2**30)
        size = self.dtype.itemsize
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        self.kv_bytes = 2 * int(config.num_hidden_layers) * kv_heads * head_dim * size  # per cached position
        self.act_bytes = (6 * int(config.hidden_size) + 3 * int(config.intermediate_size)) * size  # per slot
        self.score_bytes = heads * 4  # per (query, key) pair: eager attention's float32 scores
        self.head_rows = max(1, int(HEAD_SHARE * self.budget) // (3 * int(config.vocab_size) * 4))
        self.tokens = 0
        self.useful = 0

    # -- model calls -------------------------------------------------------------------------------

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, prefix: int,
                 cache: list[tuple[torch.Tensor, torch.Tensor]] | None, mask: torch.Tensor | None):
        """Final hidden states ``[R, W, d]`` and the cache of ``ids`` after ``cache[:prefix]`` (repeated per row)."""
        from transformers import DynamicCache

        rows = ids.shape[0]
        past = DynamicCache(config=self.hf.config) if not prefix else DynamicCache(
            ddp_cache_data=[(k[:, :, :prefix].expand(rows, -1, -1, -1), v[:, :, :prefix].expand(rows, -1, -1, -1))
                            for k, v in cache], config=self.hf.config)
        out = self.decoder(input_ids=ids, position_ids=positions, attention_mask=mask,
                           past_key_values=past, use_cache=True)
        self.tokens += ids.numel()
        return out.last_hidden_state, out.past_key_values

    def logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) from final hidden states ``[N, d]``: the LM head in slices, float32 log-sum-exp."""
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=self.device)
        for i in range(0, hidden.shape[0], self.head_rows):
            logits = self.head(hidden[i: i + self.head_rows])
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            out[i: i + self.head_rows] = token_logprobs(logits, targets[i: i + self.head_rows])
        return out

    @torch.inference_mode()
    def state(self, ids: Sequence[int], p: int, a: int) -> State:
        """One forward pass over ``ids`` (all but the last token, which predicts nothing)."""
        x = torch.tensor([list(ids)], device=self.device)
        positions = torch.arange(x.shape[1] - 1, device=self.device)[None]
        hidden, past = self._forward(x[:, :-1], positions, 0, None, None)
        self.useful += x.shape[1] - 1
        tlp = torch.zeros(x.shape[1], dtype=torch.float32, device=self.device)
        tlp[1:] = self.logprobs(hidden[0], x[0, 1:])
        return State(list(ids), p, a, tlp, hidden[0], [(layer.keys, layer.values) for layer in past.layers])

    @torch.inference_mode()
    def advance(self, state: State, ids: Sequence[int], c: int) -> State:
        """``state(ids)`` for a sequence that agrees with ``state.ids`` on its first ``c`` tokens."""
        x = torch.tensor(list(ids), device=self.device)
        hidden, cache = state.hidden[:c], [(k[:, :, :c], v[:, :, :c]) for k, v in state.cache]
        if len(ids) - 1 > c:
            positions = torch.arange(c, len(ids) - 1, device=self.device)[None]
            new, past = self._forward(x[None, c:-1], positions, c, state.cache, None)
            self.useful += len(ids) - 1 - c
            hidden = torch.cat([hidden, new[0]])
            cache = [(layer.keys, layer.values) for layer in past.layers]
        tlp = torch.empty(len(ids), dtype=torch.float32, device=self.device)
        tlp[:c] = state.tlp[:c]
        tlp[c:] = self.logprobs(hidden[c - 1:], x[c:])
        return State(list(ids), state.p, state.a, tlp, hidden, cache)

    # -- objectives --------------------------------------------------------------------------------

    def objective_of(self, state: State) -> float:
        """The objective of the state's own sequence."""
        start = state.p if self.objective == "reason-answer" else len(state.ids) - state.a
        return float(state.tlp[start:].mean())

    def trajectory(self, ids: Sequence[int], p: int, a: int, order: Sequence[int]) -> list[float]:
        """Objective of ``ids`` before any deletion and after each deletion of ``order`` (reasoning indices)."""
        state = self.state(ids, p, a)
        return [self.objective_of(state)] + self.score(state, [sorted(order[: s + 1]) for s in range(len(order))])

    @torch.inference_mode()
    def score(self, state: State, deletions: Sequence[Sequence[int]]) -> list[float]:
        """Objective of the state's sequence after deleting each set of reasoning indices in ``deletions``."""
        if not deletions:
            return []
        ids, p, a, total = state.ids, state.p, state.a, len(state.ids)
        prefix_sums = torch.cumsum(state.tlp.double(), 0).tolist()  # prefix_sums[t] = sum tlp[:t+1]
        starts, suffixes, weights, constants = [], [], [], []
        for gone in deletions:
            gone_at = {p + j for j in gone}
            if not gone_at or min(gone_at) < p or max(gone_at) >= p + state.n:
                raise ValueError(f"deletion {sorted(gone)} is not a set of reasoning indices 0..{state.n - 1}")
            c = min(gone_at)
            suffix = [ids[t] for t in range(c, total) if t not in gone_at]
            starts.append(c)
            suffixes.append(suffix)
            if self.objective == "reason-answer":
                weight = 1.0 / (total - len(gone_at) - p)
                constants.append(weight * (prefix_sums[c - 1] - prefix_sums[p - 1]))
            else:
                weight = 1.0 / a
                constants.append(0.0)
            weights.append(weight)
        scores = torch.tensor(constants, dtype=torch.float64, device=self.device)
        # The first new token of each candidate, predicted by the unchanged hidden state before it.
        first_needed = [i for i, s in enumerate(suffixes) if self.objective == "reason-answer" or len(s) <= a]
        if first_needed:
            index = torch.tensor(first_needed, device=self.device)
            h = state.hidden[torch.tensor([starts[i] - 1 for i in first_needed], device=self.device)]
            lp = self.logprobs(h, torch.tensor([suffixes[i][0] for i in first_needed], device=self.device))
            scores.index_add_(0, index, lp.double() * torch.tensor([weights[i] for i in first_needed],
                                                                 dtype=torch.float64, device=self.device))
        width, chunks = self._chunks(starts, suffixes)
        for chunk in chunks:
            self._score_chunk(state, chunk, width, starts, suffixes, weights, scores)
        return scores.tolist()

    def _chunks(self, starts: list[int], suffixes: list[list[int]]) -> tuple[int, list[list[list[int]]]]:
        """Row width, and candidates packed into rows (first fit, longest first) grouped into forward passes."""
        order = sorted((i for i in range(len(suffixes)) if len(suffixes[i]) > 1), key=lambda i: -len(suffixes[i]))
        if not order:
            return 0, []
        width = len(suffixes[order[0]]) - 1
        rows: list[list[int]] = []
        room: list[int] = []
        for i in order:
            need = len(suffixes[i]) - 1
            slot = next((r for r, free in enumerate(room) if free >= need), None)
            if slot is None:
                rows.append([])
                room.append(width)
                slot = len(rows) - 1
            rows[slot].append(i)
            room[slot] -= need
        prefix = max(starts[i] for i in order)
        per_row = width * self.act_bytes + (prefix + width) * self.kv_bytes + width * (prefix + width) * self.score_bytes
        per_pass = max(1, self.budget // per_row)
        if self.max_rows:
            per_pass = min(per_pass, self.max_rows)
        return width, [rows[i: i + per_pass] for i in range(0, len(rows), per_pass)]

    def _score_chunk(self, state: State, rows: list[list[int]], width: int, starts, suffixes, weights,
                     scores: torch.Tensor) -> None:
        """One forward pass over packed rows; adds each candidate's weighted log-probs to ``scores``."""
        prefix = max(starts[i] for row in rows for i in row)
        ids = [[0] * width for _ in rows]
        positions = [[0] * width for _ in rows]
        owner_start = [[1] * width for _ in rows]  # padding sees key 0 and itself: no empty softmax row
        segment_start = [list(range(width)) for _ in rows]
        needed, targets, owners, owner_weights = [], [], [], []
        for r, row in enumerate(rows):
            slot = 0
            for i in row:
                suffix, c = suffixes[i], starts[i]
                length = len(suffix) - 1
                ids[r][slot: slot + length] = suffix[:-1]
                positions[r][slot: slot + length] = range(c, c + length)
                owner_start[r][slot: slot + length] = [c] * length
                segment_start[r][slot: slot + length] = [slot] * length
                # slot s of the segment predicts suffix[s + 1]; the answer objective needs the last a only
                first = 0 if self.objective == "reason-answer" else max(0, len(suffix) - 1 - state.a)
                for s in range(first, length):
                    needed.append(r * width + slot + s)
                    targets.append(suffix[s + 1])
                    owners.append(i)
                    owner_weights.append(weights[i])
                slot += length
            self.useful += slot
        device = self.device
        owner_start_t = torch.tensor(owner_start, device=device)
        segment_start_t = torch.tensor(segment_start, device=device)
        keys = torch.arange(prefix, device=device)
        slots = torch.arange(width, device=device)
        sees_cache = keys[None, None, :] < owner_start_t[:, :, None]
        sees_row = (slots[None, None, :] >= segment_start_t[:, :, None]) & (slots[None, None, :] <= slots[None, :, None])
        allowed = torch.cat([sees_cache, sees_row], dim=-1)[:, None]
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=device).masked_fill_(
            ~allowed, torch.finfo(self.dtype).min)
        hidden, _ = self._forward(torch.tensor(ids, device=device), torch.tensor(positions, device=device),
                                  prefix, state.cache, mask)
        if needed:
            flat = hidden.reshape(-1, hidden.shape[-1])[torch.tensor(needed, device=device)]
            lp = self.logprobs(flat, torch.tensor(targets, device=device))
            scores.index_add_(0, torch.tensor(owners, device=device),
                              lp.double() * torch.tensor(owner_weights, dtype=torch.float64, device=device))

