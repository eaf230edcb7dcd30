"""Engine v3, the flat engine: every token of a pass in one token-major batch, key/values by index.

The same job as ``engine.Engine`` (exact objectives of candidate deletions of several sequences),
laid out for a GPU, where the cost of a pass is the host's, not the model's, unless the pass is large:

- **Flat packing.** The fresh tokens of every segment of a pass go into one batch ``[1, T]`` with
  explicit ``position_ids``: no rows, no padding. A *segment* is a candidate's suffix (from its
  deletion point ``c`` to its second-to-last token), or the part of a state's own sequence not yet
  computed. A segment attends to a prefix of its state's key/values (positions ``0 .. c - 1``) and
  causally to itself; a candidate of a state whose own pass is in the same batch reads that
  state's fresh key/values, which each layer writes before any attention reads.
- **Key/values by index** (``KVPool``): one tensor per layer that every pass writes its fresh
  key/values into once (``index_copy_``) and reads by index; a state is the list of pool slots of
  its positions, so advancing a state (``advance``: the same tokens up to ``c``) copies nothing:
  the new state shares the old one's first ``c`` slots. Slots are reference-counted and come back
  when no state holds them; candidates' slots come back after their pass. The final hidden state
  of each state position is pooled too (the LM head reads it where a candidate's first new token
  is predicted by the state's hidden state before it).
- **Reuse across steps** (the memo, as ``Engine``'s): a candidate that deletes one run of adjacent
  tokens keeps the pool slots of its positions and the sum of its log-probs. After the state deletes
  from reasoning index ``d`` on, candidate ``k .. k + L - 1 < d`` has the same sequence up to position
  ``p + d - L - 1``: its segment starts there, reading its memo's slots as keys and the hidden state
  of its last one for the first new log-prob. Bookkeeping only: nothing is copied.
- **States advance lazily**: ``state`` and ``advance`` record what to compute, and the next pass
  computes it beside the candidates that need it, so a step of ``lockstep`` searches is one pass.
- **Attention** through transformers' attention interface (``FLAT``; no 4D mask is built): the
  ``reference`` path gathers each segment's keys and applies a mask built from the segment
  metadata (any device; the CPU's and the tests'), the ``varlen`` path hands the same metadata to
  PyTorch's variable-length flash attention (CUDA). Sliding windows follow each layer's own.
- **Log-probs in chunks**: the LM head runs only on the rows the objective needs, ``head_rows`` at
  a time, float32 log-sum-exp; every log-prob comes to the host in one copy, where objectives are
  summed in float64.

The host builds a pass's layout with numpy and copies it to the device once; the operations a
pass dispatches do not grow with its candidates or states (tested with ``TorchDispatchMode``).
Not here: attention soft-capping (Gemma-2: the rows engine does it).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import SettingsError
from ..ops import token_logprobs
from ..schema import OBJECTIVES
from .engine import DEFAULT_MEMORY_GIB, layer_windows

FLAT = "prunelens_flat"  # the attention implementation's name in transformers' AttentionInterface
ATTENTIONS = ("reference", "varlen")


class KVPool:
    """Per-layer keys and values, and final hidden states, of pooled positions, addressed by slot."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, hidden: int, dtype, device, capacity: int = 1024):
        self.shape = (layers, kv_heads, head_dim, hidden)
        self.dtype, self.device = dtype, device
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.hidden = torch.empty(0, hidden, dtype=dtype, device=device)
        self.count = np.zeros(0, dtype=np.int64)  # holders of each slot
        self.free = np.zeros(0, dtype=np.int64)  # a stack of free slots
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        layers, kv_heads, head_dim, hidden = self.shape
        old = len(self.count)

        def bigger(t: torch.Tensor | None, *rest: int) -> torch.Tensor:
            new = torch.zeros(capacity, *rest, dtype=self.dtype, device=self.device)
            if t is not None:
                new[:old] = t[:old]
            return new

        self.keys = [bigger(self.keys[i] if old else None, kv_heads, head_dim) for i in range(layers)]
        self.values = [bigger(self.values[i] if old else None, kv_heads, head_dim) for i in range(layers)]
        self.hidden = bigger(self.hidden if old else None, hidden)
        self.count = np.concatenate([self.count, np.zeros(capacity - old, dtype=np.int64)])
        self.free = np.concatenate([self.free, np.arange(capacity - 1, old - 1, -1)])

    def alloc(self, n: int) -> np.ndarray:
        """``n`` free slots, held once each."""
        if n > len(self.free):
            self._grow(max(2 * len(self.count), len(self.count) + n - len(self.free)))
        slots = self.free[len(self.free) - n:][::-1].copy()  # the stack's top first
        self.free = self.free[:len(self.free) - n]
        self.count[slots] += 1
        return slots

    def hold(self, slots: np.ndarray) -> None:
        np.add.at(self.count, slots, 1)

    def release(self, slots: np.ndarray) -> None:
        np.subtract.at(self.count, slots, 1)
        self.free = np.concatenate([self.free, np.unique(slots[self.count[slots] == 0])])

    @property
    def used(self) -> int:
        return int((self.count > 0).sum())


@dataclass(eq=False)
class FlatMemo:
    """A candidate's computed positions ``c .. c + valid - 1`` (pool slots, held while the memo lives)
    and ``cum[i]``, the sum of its log-probs at positions ``c .. c + i - 1`` (``None`` for the answer
    objective, which never needs them)."""

    slots: np.ndarray
    cum: np.ndarray | None
    _finalizer: object = field(default=None, repr=False)

    @property
    def valid(self) -> int:
        return len(self.slots)


@dataclass(eq=False)
class FlatState:
    """A sequence ``ids`` (``p`` prompt, ``a`` post tokens): the pool slots of positions ``0 .. T - 2``
    and ``tlp[t] = log p(ids[t] | ids[:t])`` from ``done`` on; positions ``done ..`` still to compute."""

    ids: list[int]
    p: int
    a: int
    slots: np.ndarray  # [T - 1]
    tlp: np.ndarray  # [T] float64; tlp[0] = 0
    done: int  # positions [0, done) are computed
    tokens: int = 0  # slots passed through the model for this state and those it was advanced from
    useful: int = 0
    memo: dict[tuple[int, ...], FlatMemo] | None = field(default=None, repr=False)  # deleted run -> its positions
    _finalizer: object = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.ids) - self.p - self.a

    @property
    def pending(self) -> bool:
        return self.done < len(self.ids) - 1


@dataclass
class _Pass:
    """The layout of one pass, on the device: fresh tokens, their positions and pool slots, and each
    segment's keys (``keys``: pool slots; ``key_pos``, ``key_seg``; ``cu_q``, ``cu_k``)."""

    write: torch.Tensor
    keys: torch.Tensor
    q_pos: torch.Tensor
    q_seg: torch.Tensor
    key_pos: torch.Tensor
    key_seg: torch.Tensor
    cu_q: torch.Tensor
    cu_k: torch.Tensor
    max_q: int
    max_k: int
    attention: str
    pool: KVPool
    calls: int = 0  # layers that attended through ``_flat_attention`` in this pass


def _flat_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, flat: _Pass | None = None,
                    sliding_window: int | None = None, **kwargs):
    """Attention of a flat pass: write the fresh keys and values into the pool, read each segment's by
    index. ``query`` ``[1, H, T, d]``, ``key``/``value`` ``[1, H_kv, T, d]``; returns ``[1, T, H, d]``."""
    pool, layer = flat.pool, module.layer_idx
    flat.calls += 1
    pool.keys[layer].index_copy_(0, flat.write, key[0].transpose(0, 1))
    pool.values[layer].index_copy_(0, flat.write, value[0].transpose(0, 1))
    k = pool.keys[layer].index_select(0, flat.keys)  # [K, H_kv, d]
    v = pool.values[layer].index_select(0, flat.keys)
    q = query[0].transpose(0, 1)  # [T, H, d]
    window = sliding_window or getattr(module, "sliding_window", None)
    if flat.attention == "varlen":
        return _varlen(q, k, v, flat, scaling, window)[None], None
    allowed = (flat.q_seg[:, None] == flat.key_seg[None, :]) & (flat.key_pos[None, :] <= flat.q_pos[:, None])
    if window:
        allowed &= flat.key_pos[None, :] > flat.q_pos[:, None] - window
    groups = q.shape[1] // k.shape[1]
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(0, 1)[None], k.repeat_interleave(groups, 1).transpose(0, 1)[None],
        v.repeat_interleave(groups, 1).transpose(0, 1)[None], attn_mask=allowed, scale=scaling)
    return out[0].transpose(0, 1)[None].contiguous(), None


def _varlen(q, k, v, flat: _Pass, scaling, window: int | None) -> torch.Tensor:
    """PyTorch's variable-length flash attention on the pass's segments (causal from the bottom right:
    a segment's first query sees its whole prefix); its signature changed across PyTorch releases,
    so the arguments follow what it takes."""
    import inspect

    from torch.nn.attention.varlen import varlen_attn

    takes = inspect.signature(varlen_attn).parameters
    extra = {"scale": scaling} if "scale" in takes else {}
    if "enable_gqa" in takes:
        extra["enable_gqa"] = True
    else:
        k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], 1) for x in (k, v))
    if "window_size" in takes:
        extra["window_size"] = (window - 1 if window else -1, 0)
    elif window:
        raise SettingsError("this PyTorch's varlen attention has no sliding window: use the flat engine's reference "
                            "attention or the rows engine")
    else:
        extra["is_causal"] = True
    return varlen_attn(q, k, v, flat.cu_q, flat.cu_k, flat.max_q, flat.max_k, **extra)


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(FLAT, _flat_attention)


class FlatEngine:
    """Exact objectives of candidate deletions, flat-packed (see the module docstring); the interface of
    ``engine.Engine`` (``state``, ``advance``, ``objective_of``, ``score``, ``score_many``,
    ``trajectory``), so every search runs on either."""

    def __init__(self, model, objective: str = "reason-answer", attention: str | None = None, head_rows: int = 4096,
                 memo: bool = True, memory_gib: float | None = None):
        if objective not in OBJECTIVES:
            raise SettingsError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
        config = model.hf.config
        if getattr(config, "attn_logit_softcapping", None):
            raise SettingsError(f"{type(config).__name__} soft-caps attention logits, which the flat engine does not: "
                                "use the default engine")
        half = model.dtype in (torch.bfloat16, torch.float16)  # what the flash kernels take
        attention = attention or ("varlen" if model.device.type == "cuda" and half and _has_varlen() else "reference")
        if attention not in ATTENTIONS:
            raise SettingsError(f"unknown flat attention {attention!r}: use one of {', '.join(ATTENTIONS)}")
        layer_windows(config)  # a layer type no mask here expresses fails now
        self.model, self.hf, self.objective, self.attention = model, model.hf, objective, attention
        self.device = model.device
        self.decoder = self.hf.get_decoder()
        self.head = self.hf.get_output_embeddings()
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.head_rows = head_rows
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        self.pool = KVPool(int(config.num_hidden_layers), kv_heads, head_dim, int(config.hidden_size), model.dtype,
                           self.device)
        self.memo = memo
        if memory_gib is None:
            memory_gib = DEFAULT_MEMORY_GIB if self.device.type != "cuda" \
                else 0.3 * torch.cuda.mem_get_info(self.device)[0] / 2**30
        slot_bytes = (2 * int(config.num_hidden_layers) * kv_heads * head_dim + int(config.hidden_size)) \
            * torch.finfo(model.dtype).bits // 8
        self.memo_slots = int(memory_gib * 2**30) // slot_bytes  # most slots all memos hold together
        self.memo_held = 0
        self.tokens = 0
        self.useful = 0
        self.passes = 0
        self.timings: list[tuple[float, float]] | None = None  # a list: (host, device) seconds of each pass
        _register()

    # -- states ------------------------------------------------------------------------------------

    def _new(self, ids: Sequence[int], p: int, a: int, slots: np.ndarray, tlp: np.ndarray, done: int,
             tokens: int, useful: int, memo: dict | None) -> FlatState:
        state = FlatState(list(ids), p, a, slots, tlp, done, tokens, useful, memo)
        state._finalizer = weakref.finalize(state, self.pool.release, slots)
        return state

    def _memo(self, slots: np.ndarray, cum: np.ndarray | None) -> FlatMemo:
        """A memo holding ``slots`` until it is dropped."""
        self.pool.hold(slots)
        self.memo_held += len(slots)
        memo = FlatMemo(slots, cum)
        memo._finalizer = weakref.finalize(memo, self._drop, slots)
        return memo

    def _drop(self, slots: np.ndarray) -> None:
        self.pool.release(slots)
        self.memo_held -= len(slots)

    def state(self, ids: Sequence[int], p: int, a: int) -> FlatState:
        """The state of ``ids``, computed by the next pass (``objective_of`` or a score)."""
        slots = self.pool.alloc(len(ids) - 1)
        return self._new(ids, p, a, slots, np.zeros(len(ids)), 0, 0, 0, {} if self.memo else None)

    def advance(self, state: FlatState, ids: Sequence[int], c: int, deleted: int | None = None) -> FlatState:
        """``state(ids)`` for a sequence that agrees with ``state.ids`` on its first ``c`` tokens: those
        positions' slots and log-probs are shared, the rest computed by the next pass.

        ``deleted``: the first reasoning index whose deletion made ``ids``; the memo of every candidate
        before it carries over, shortened to what still holds.
        """
        self._realise([state])
        shared = state.slots[:c]
        self.pool.hold(shared)
        slots = np.concatenate([shared, self.pool.alloc(len(ids) - 1 - c)])
        tlp = np.zeros(len(ids))
        tlp[:c] = state.tlp[:c]
        memo = None
        if state.memo is not None:
            memo = {}
            for k, m in state.memo.items() if deleted is not None else ():
                valid = min(m.valid, deleted - len(k) - k[0])  # candidate k's sequence changes from p + d - len(k) on
                if k[-1] < deleted and valid >= 1:
                    memo[k] = m if valid == m.valid else \
                        self._memo(m.slots[:valid], None if m.cum is None else m.cum[:valid + 1])
        return self._new(ids, state.p, state.a, slots, tlp, c, state.tokens, state.useful, memo)

    def objective_of(self, state: FlatState) -> float:
        """The objective of the state's own sequence."""
        self._realise([state])
        start = state.p if self.objective == "reason-answer" else len(state.ids) - state.a
        return float(state.tlp[start:].mean())

    def trajectory(self, ids: Sequence[int], p: int, a: int, order: Sequence[int],
                   steps: Sequence[int] | None = None) -> list[float]:
        """As ``Engine.trajectory``: the objective before any deletion and after each of ``order``."""
        state = self.state(ids, p, a)
        wanted = [s for s in (range(1, len(order) + 1) if steps is None else steps) if 0 < s <= len(order)]
        trajectory = [float("nan")] * (len(order) + 1)
        scores = self.score(state, [sorted(order[:s]) for s in wanted])
        trajectory[0] = self.objective_of(state)
        for s, value in zip(wanted, scores):
            trajectory[s] = value
        return trajectory

    def _realise(self, states: Sequence[FlatState]) -> None:
        pending = [s for s in states if s.pending]
        if pending:
            self.score_many([(s, []) for s in pending])

    # -- scoring -----------------------------------------------------------------------------------

    def score(self, state: FlatState, deletions: Sequence[Sequence[int]]) -> list[float]:
        """Objective of the state's sequence after deleting each set of reasoning indices in ``deletions``."""
        return self.score_many([(state, deletions)])[0]

    @torch.inference_mode()
    def score_many(self, requests: Sequence[tuple[FlatState, Sequence[Sequence[int]]]]) -> list[list[float]]:
        """``score`` of several states in one pass, with the pending part of every state among them.
        Deletions of one run of adjacent tokens (a token, a word) use and refresh the state's memo."""
        started = time.perf_counter()
        reason = self.objective == "reason-answer"
        states = list({id(s): s for s, _ in requests}.values())
        owners = [s for s in states if s.pending]
        none = np.zeros(0, dtype=np.int64)
        blocks = [self._block(s, np.array([s.done]), np.array([s.done]), np.arange(s.done, len(s.ids)),
                              np.array([len(s.ids) - s.done]), np.array([s.done]), s.slots[s.done:], none)
                  for s in owners]
        scratch, reused = [], []
        for state, deletions in requests:
            if deletions:
                c, tails, counts = self._candidates(state, deletions)
                first = np.full(len(c), state.p) if reason else c + counts - state.a
                keys, memos = self._memos(state, deletions)
                have = np.array([m.valid if m is not None else 0 for m in memos], dtype=np.int64)
                # a memo covers positions before the last token (and before the answer, for its objective)
                v = np.maximum(np.minimum(have, counts - 1 if reason else np.minimum(counts - 1, first - c)), 0)
                pre = np.concatenate([m.slots[:k] for m, k in zip(memos, v) if k] or [none])
                known = np.array([m.cum[k] if k and m.cum is not None else 0.0 for m, k in zip(memos, v)])
                own = self.pool.alloc(int((counts - 1 - v).sum()))
                scratch.append(own)
                blocks.append(self._block(state, c, c + v, tails, counts, first, own, pre))
                reused.append((keys, memos, v, known, pre, own))
        if not blocks:
            return [[] for _ in requests]
        values, owner = self._pass(blocks)
        sums = np.bincount(owner, weights=values, minlength=sum(len(b["c"]) for b in blocks))
        for i, state in enumerate(owners):  # states first: candidates need their log-probs before c
            mine = owner == i
            state.tlp[blocks[i]["target_pos"]] = values[mine]
            work = len(state.ids) - 1 - state.done
            state.tokens, state.useful, state.done = state.tokens + work, state.useful + work, len(state.ids) - 1
            self.useful += work
        out, at = [], len(owners)
        row_at = np.searchsorted(owner, np.arange(len(sums) + 1))  # segment g's rows: values[row_at[g]:row_at[g + 1]]
        for state, deletions in requests:
            if not deletions:
                out.append([])
                continue
            block, (keys, memos, v, known, pre, own) = blocks[at], reused[at - len(owners)]
            n = len(block["c"])
            total = block["c"] + block["counts"]  # each candidate's length
            mine = sums[block["first_segment"]: block["first_segment"] + n]
            if reason:
                cum = np.concatenate([[0.0], np.cumsum(state.tlp)])  # cum[t] = sum of tlp[:t]
                scores = (cum[block["c"]] - cum[state.p] + known + mine) / (total - state.p)
            else:
                scores = mine / state.a
            out.append(scores.tolist())
            self.useful += int(block["n_q"].sum())
            if state.memo is not None:
                rows = [values[row_at[g]: row_at[g + 1]] for g in range(block["first_segment"], block["first_segment"] + n)]
                self._remember(state, keys, memos, v, block["n_q"], pre, own, rows)
            at += 1
        for slots in scratch:  # what a memo kept is held by it
            self.pool.release(slots)
        if self.timings is not None:
            self.timings.append((time.perf_counter() - started - self._device_seconds, self._device_seconds))
        return out

    @staticmethod
    def _memos(state: FlatState, deletions: Sequence[Sequence[int]]) -> tuple[list, list]:
        """Each deletion's memo key (its run of adjacent reasoning indices; None for another set or
        without a memo) and the state's memo under it."""
        if state.memo is None:
            return [None] * len(deletions), [None] * len(deletions)
        runs = [tuple(sorted(set(d))) for d in deletions]
        keys = [run if run and run[-1] - run[0] == len(run) - 1 else None for run in runs]
        return keys, [state.memo.get(k) if k is not None else None for k in keys]

    def _remember(self, state: FlatState, keys: list, memos: list, v: np.ndarray, fresh: np.ndarray, pre: np.ndarray,
                  own: np.ndarray, rows: list[np.ndarray]) -> None:
        """Keep each keyed candidate's positions (its memo's and its fresh ones) and log-prob sums in the
        state's memo, while the memos of every state hold at most ``memo_slots`` slots."""
        pre_at, own_at = np.cumsum(np.concatenate([[0], v])), np.cumsum(np.concatenate([[0], fresh]))
        for i, key in enumerate(keys):
            old = state.memo.get(key) if key is not None else None
            grow = v[i] + fresh[i] - (old.valid if old is not None else 0)
            if key is None or v[i] + fresh[i] == 0 or self.memo_held + grow > self.memo_slots:
                continue
            slots = np.concatenate([pre[pre_at[i]: pre_at[i + 1]], own[own_at[i]: own_at[i + 1]]])
            cum = None
            if self.objective == "reason-answer":
                start = memos[i].cum[: v[i] + 1] if v[i] else np.zeros(1)
                cum = np.concatenate([start, start[-1] + np.cumsum(rows[i])])
            state.memo[key] = self._memo(slots, cum)

    @staticmethod
    def _candidates(state: FlatState, deletions: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each candidate's deletion point ``c``, and the state positions its positions ``c ..`` hold
        (``tails``, concatenated; ``counts`` each): vectorised where every deletion is one run of
        adjacent tokens (a token, a word, part of one), one candidate at a time otherwise."""
        n, p, total = state.n, state.p, len(state.ids)
        lo = np.array([min(d) if len(d) else -1 for d in deletions])
        hi = np.array([max(d) if len(d) else -1 for d in deletions])
        size = np.array([len(set(d)) for d in deletions])
        if (lo < 0).any() or (hi >= n).any():
            bad = next(d for d, a, b in zip(deletions, lo, hi) if a < 0 or b >= n)
            raise ValueError(f"deletion {sorted(bad)} is not a set of reasoning indices 0..{n - 1}")
        c = p + lo
        counts = total - size - c
        if (hi - lo + 1 == size).all():  # runs: positions c .. hold the state's c + size ..
            start = np.concatenate([[0], np.cumsum(counts)[:-1]])
            local = np.arange(counts.sum()) - np.repeat(start, counts)
            return c, np.repeat(c + size, counts) + local, counts
        tails = [np.delete(np.arange(ci, total), np.array(sorted(set(d))) + p - ci) for ci, d in zip(c, deletions)]
        return c, np.concatenate(tails), counts

    def _block(self, state: FlatState, c: np.ndarray, r: np.ndarray, tails: np.ndarray, counts: np.ndarray,
               first: np.ndarray, own: np.ndarray, pre: np.ndarray) -> dict:
        """The layout of segments of one state, all numpy: segment ``s`` holds the positions
        ``c[s] ..`` of a sequence whose position ``c[s] + i`` is the state's ``tails[..][i]`` (``counts[s]``
        of them). Its positions ``c[s] .. r[s] - 1`` come from a memo (their pool slots: ``pre``,
        concatenated); its fresh tokens (from ``r[s]``, all but the last) go to the pool slots ``own``;
        its keys are the state's slots before ``c[s]``, the memo's and its own; log-prob rows for its
        positions ``max(first[s], r[s]) ..``, the first predicted from the pooled hidden state before it."""
        ids = np.asarray(state.ids, dtype=np.int64)
        v = r - c  # positions from a memo
        m = counts - 1 - v  # fresh tokens per segment
        seg_f, at_f = np.repeat(np.arange(len(c)), m), np.concatenate([[0], np.cumsum(m)[:-1]])
        local_f = np.arange(m.sum()) - at_f[seg_f]
        at_t = np.concatenate([[0], np.cumsum(counts)[:-1]])
        at_m = np.concatenate([[0], np.cumsum(v)[:-1]])
        keys_n = np.where(m > 0, r + m, 0)  # a segment without fresh tokens asks no attention
        seg_k = np.repeat(np.arange(len(c)), keys_n)
        local_k = np.arange(keys_n.sum()) - np.repeat(np.concatenate([[0], np.cumsum(keys_n)[:-1]]), keys_n)

        def take(slots: np.ndarray, index: np.ndarray) -> np.ndarray:
            return slots[np.clip(index, 0, len(slots) - 1)] if len(slots) else np.zeros_like(index)

        ck, rk = c[seg_k], r[seg_k]
        keys = np.where(local_k < ck, take(state.slots, local_k),
                        np.where(local_k < rk, take(pre, at_m[seg_k] + local_k - ck), take(own, at_f[seg_k] + local_k - rk)))
        low = np.maximum(np.maximum(first, r), 1)
        rows_n = c + counts - low
        seg_r = np.repeat(np.arange(len(c)), rows_n)
        t = low[seg_r] + np.arange(rows_n.sum()) - np.repeat(np.concatenate([[0], np.cumsum(rows_n)[:-1]]), rows_n)
        from_pool = t == r[seg_r]
        # the hidden state before r: the memo's last position, or the state's before c
        before = np.where(v[seg_r] > 0, take(pre, at_m[seg_r] + v[seg_r] - 1), take(state.slots, c[seg_r] - 1))
        target = ids[tails[at_t[seg_r] + t - c[seg_r]]]
        return {"ids": ids[tails[at_t[seg_f] + v[seg_f] + local_f]], "q_pos": r[seg_f] + local_f, "write": own,
                "seg_q": seg_f, "keys": keys, "key_pos": local_k, "seg_k": seg_k, "n_q": m, "n_k": keys_n,
                "pool_slot": before[from_pool], "pool_owner": seg_r[from_pool], "pool_target": target[from_pool],
                "flat_index": (at_f[seg_r] + t - 1 - r[seg_r])[~from_pool], "flat_owner": seg_r[~from_pool],
                "flat_target": target[~from_pool],
                "target_pos": np.concatenate([t[from_pool], t[~from_pool]]), "c": c, "counts": counts}

    def _pass(self, blocks: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass over ``blocks``: every needed log-prob (host, float64) and its segment."""
        segments = np.cumsum([0] + [len(b["c"]) for b in blocks])
        tokens = np.cumsum([0] + [len(b["ids"]) for b in blocks])
        for b, s0 in zip(blocks, segments):
            b["first_segment"] = int(s0)
        cat = np.concatenate
        n_q, n_k = cat([b["n_q"] for b in blocks]), cat([b["n_k"] for b in blocks])
        pool_owner = cat([b["pool_owner"] + s0 for b, s0 in zip(blocks, segments)])
        flat_owner = cat([b["flat_owner"] + s0 for b, s0 in zip(blocks, segments)])
        parts = [cat([b["ids"] for b in blocks]), cat([b["q_pos"] for b in blocks]), cat([b["write"] for b in blocks]),
                 cat([b["seg_q"] + s0 for b, s0 in zip(blocks, segments)]), cat([b["keys"] for b in blocks]),
                 cat([b["key_pos"] for b in blocks]), cat([b["seg_k"] + s0 for b, s0 in zip(blocks, segments)]),
                 cat([[0], np.cumsum(n_q)]), cat([[0], np.cumsum(n_k)]), cat([b["pool_slot"] for b in blocks]),
                 cat([b["flat_index"] + t0 for b, t0 in zip(blocks, tokens)]),
                 cat([b["pool_target"] for b in blocks] + [b["flat_target"] for b in blocks])]
        sizes = [len(x) for x in parts]
        host = torch.from_numpy(cat(parts).astype(np.int64))
        if self.device.type == "cuda":
            host = host.pin_memory()
        ids, q_pos, write, q_seg, keys, key_pos, key_seg, cu_q, cu_k, row_slot, row_flat, targets = \
            host.to(self.device, non_blocking=True).split(sizes)  # the one host-to-device copy
        layout = _Pass(write, keys, q_pos, q_seg, key_pos, key_seg, cu_q.int(), cu_k.int(), int(n_q.max()),
                       int(n_k.max()), self.attention, self.pool)
        config = self.hf.config
        before = config._attn_implementation
        clock = _Clock(self.device, self.timings is not None)
        try:
            config._attn_implementation = FLAT
            hidden = self.decoder(input_ids=ids[None], position_ids=q_pos[None], use_cache=False, flat=layout)
        finally:
            config._attn_implementation = before
        if layout.calls != len(self.pool.keys):
            raise RuntimeError(f"{layout.calls} of the model's {len(self.pool.keys)} attention layers went through "
                               "transformers' attention interface: a model hooked by TransformerLens (its bridge "
                               "replaces the attention modules) cannot score on the flat engine; use the rows engine")
        hidden = hidden.last_hidden_state[0]
        self.passes += 1
        self.tokens += len(ids)
        self.pool.hidden.index_copy_(0, write, hidden)  # candidates' rows too: their slots are scratch
        rows = torch.cat([self.pool.hidden.index_select(0, row_slot), hidden.index_select(0, row_flat)])
        lp = torch.empty(rows.shape[0], dtype=torch.promote_types(rows.dtype, torch.float32), device=self.device)
        for i in range(0, rows.shape[0], self.head_rows):
            logits = self.head(rows[i: i + self.head_rows])
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            lp[i: i + self.head_rows] = token_logprobs(logits, targets[i: i + self.head_rows])
        self._device_seconds = clock.stop()
        values = lp.double().cpu().numpy()  # the one device-to-host copy
        # rows came as [pool rows of every block, flat rows of every block]; per block: [pool, flat]
        owner = cat([pool_owner, flat_owner])
        order = np.argsort(owner, kind="stable")
        return values[order], owner[order]


class _Clock:
    """Device time of a pass: CUDA events on a GPU (the host waits once, at the end), wall time on a CPU."""

    def __init__(self, device: torch.device, on: bool):
        self.on, self.cuda = on, device.type == "cuda"
        if on and self.cuda:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.begin.record()
        self.started = time.perf_counter()

    def stop(self) -> float:
        if not self.on:
            return 0.0
        if not self.cuda:
            return time.perf_counter() - self.started
        self.end.record()
        self.end.synchronize()
        return self.begin.elapsed_time(self.end) / 1000


def _has_varlen() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True
