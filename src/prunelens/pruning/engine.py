"""The scoring engine: exact objectives of many candidate states of one sequence, with little model work.

A ``State`` holds one forward pass over a sequence ``S`` of ``T`` tokens (``p`` prompt, ``n``
reasoning, ``a`` post): every position's final hidden state and key/value cache (all but the last
position, which predicts nothing), and ``tlp[t] = log p(S[t] | S[:t])``.

A candidate is ``S`` with a set ``D`` of reasoning positions deleted. It agrees with ``S`` before
``c = p + min(D)``, so there its log-probs, hidden states and cache are those of the state. The
token that now stands at ``c`` is predicted by the cached hidden state at ``c - 1`` (the LM head on
one vector). Only the new tokens from ``c`` to the second-to-last need the model: the candidate's
*segment*. How the work is done:

- segments of many candidates are packed into rows of one width (first fit, longest first); each
  row attends to the shared prefix cache through a 4D additive mask (a segment sees the cache
  before its own ``c`` and its own earlier tokens) with explicit ``position_ids``;
- the LM head runs only where the objective needs a log-prob, in slices, with a float32
  log-sum-exp; objectives are summed on the device and copied to the host once per call;
- **reuse across steps**: a candidate that deletes one run of adjacent tokens (one token, or a
  word) keeps its segment (key/values and log-probs) in the state's memo. After the state deletes
  from reasoning index ``d`` on (``advance``), candidate ``k .. k + L - 1 < d`` still has the same
  sequence up to position ``p + d - L - 1``: it reuses its memo there, recomputes from that position
  on, and the row's cache holds its reused block beside the prefix;
- rows per forward pass come from a memory budget that counts what is really materialised: the
  prefix cache and reused blocks are concatenated per row, and a float32 score matrix per head is
  counted (what eager attention keeps; sdpa, the default, keeps less); the memo itself stops
  growing at the same budget.

- **several sequences per pass** (``score_many``): requests of several states (the searches of
  several examples side by side) are packed together; a row holds candidates of one state and
  carries that state's prefix cache, so late steps of short chains still fill a pass.

``Engine.tokens`` counts the slots passed through the model (padding included); ``Engine.useful``
counts the tokens the scheme must compute, so their ratio is the packing overhead. Each state
carries the same two counts for the work done on its sequence and the states it was advanced
from (a search's own share when several run side by side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import SettingsError
from ..ops import token_logprobs
from ..schema import OBJECTIVES

DEFAULT_MEMORY_GIB = 2.0  # CPU; on CUDA: 60% of the free memory
HEAD_SHARE = 0.25  # share of the memory budget for one slice of LM-head logits
IDS, POSITIONS, SEES, LO, HI, START = range(6)  # fields of the packed rows' slot grid (Engine._slots)

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values


@dataclass
class Memo:
    """The own sequence, from its deletion point ``c``, of a candidate that deletes one run of adjacent tokens.

    ``kv``: ``[layers, 2, kv_heads, length, head_dim]`` (keys and values of every layer in one
    tensor, so a row's reused blocks are gathered in one operation, not two per layer) for
    positions ``c ..``, of which the first ``valid`` still hold; ``cum[i]``: the sum of its
    log-probs at positions ``c .. c + i - 1`` (reason-answer objective only).
    """

    kv: torch.Tensor
    valid: int
    cum: list[float] | None


@dataclass
class State:
    """One forward pass over ``ids`` = ``p`` prompt + ``n`` reasoning + ``a`` post tokens."""

    ids: list[int]
    p: int
    a: int
    tlp: torch.Tensor  # [T] float32, tlp[0] = 0
    hidden: torch.Tensor  # [T - 1, d] final (normed) hidden states
    cache: KV  # [1, kv_heads, T - 1, head_dim]
    memo: dict[tuple[int, ...], Memo] | None = field(default=None, repr=False)  # deleted run -> its segment
    tokens: int = 0  # slots passed through the model for this state and those it was advanced from
    useful: int = 0  # of which the scheme needed

    @property
    def n(self) -> int:
        return len(self.ids) - self.p - self.a


@dataclass
class _Candidate:
    start: int  # c: the first position that differs from the state's sequence
    resume: int  # u >= c: the first position recomputed; [c, u) comes from a memo
    suffix: list[int]  # the candidate's tokens from u to the end; the segment is suffix[:-1]
    weight: float  # of each log-prob in the objective
    known: float | None  # sum of log-probs at positions c..u from a memo (None: c is predicted from the state)
    block: torch.Tensor | None  # memo key/values of positions [c, u): [layers, 2, kv_heads, u - c, head_dim]
    key: tuple[int, ...] | None  # the run of adjacent reasoning indices whose memo this candidate refreshes
    owner: int = 0  # which state (of the requests scored together) it is a candidate of

    @property
    def length(self) -> int:
        return len(self.suffix) - 1

    @property
    def reused(self) -> int:
        return self.resume - self.start


def layer_windows(config) -> dict[str, int | None]:
    """The attention window of each layer type of a model: ``{"full_attention": None}`` for most,
    ``{"sliding_attention": W, "full_attention": None}`` for models with sliding layers (Gemma-2/3,
    Qwen with ``use_sliding_window``); a model that slides on every layer without layer types
    (Mistral, Phi-3 with ``sliding_window``) has one sliding type. A layer type that no mask here
    can express stops the run before any pass."""
    from ..errors import SettingsError

    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None) or ["sliding_attention" if window else "full_attention"]
    unknown = sorted(set(types) - {"full_attention", "sliding_attention"})
    if unknown:
        raise SettingsError(f"{type(config).__name__} has {unknown[0]} layers: exact scoring knows full and sliding "
                            "attention only")
    return {kind: (int(window) if kind == "sliding_attention" else None) for kind in dict.fromkeys(types)}


class Engine:
    """Forward passes for one model and objective, counting the tokens it processes."""

    def __init__(self, model, objective: str = "reason-answer", max_rows: int | None = None,
                 memory_gib: float | None = None, reuse: bool = True):
        if objective not in OBJECTIVES:
            raise SettingsError(f"unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
        self.model = model
        self.hf = model.hf
        self.objective = objective
        self.device = model.device
        self.dtype = model.dtype
        self.reuse = reuse
        self.decoder = self.hf.get_decoder()
        self.head = self.hf.get_output_embeddings()
        config = self.hf.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.max_rows = max_rows
        if memory_gib is None:
            memory_gib = DEFAULT_MEMORY_GIB if self.device.type == "cpu" \
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
        self.windows = layer_windows(config)
        self.tokens = 0
        self.useful = 0

    # -- model calls -------------------------------------------------------------------------------

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, cache: KV | None, mask: torch.Tensor | None):
        """Final hidden states ``[R, W, d]`` and the cache after running ``ids`` on top of ``cache``."""
        from transformers import DynamicCache

        # no config: every layer keeps every key (a sliding layer's cache would keep only its window's,
        # and packed rows reach further back); the masks apply the windows
        past = DynamicCache(ddp_cache_data=cache) if cache else DynamicCache()
        out = self.decoder(input_ids=ids, position_ids=positions, attention_mask=mask,
                           past_key_values=past, use_cache=True)
        self.tokens += ids.numel()
        if any(layer.keys is None for layer in out.past_key_values.layers):
            import transformers

            from ..errors import ModelLoadError
            raise ModelLoadError(f"the model left its KV cache empty under transformers {transformers.__version__}: "
                                 "a model hooked by transformer-lens 4.3 needs transformers<5.24")
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
        hidden, past = self._forward(x[:, :-1], positions, None, None)
        self.useful += x.shape[1] - 1
        tlp = torch.zeros(x.shape[1], dtype=torch.float32, device=self.device)
        tlp[1:] = self.logprobs(hidden[0], x[0, 1:])
        return State(list(ids), p, a, tlp, hidden[0], [(layer.keys, layer.values) for layer in past.layers],
                     {} if self.reuse else None, x.shape[1] - 1, x.shape[1] - 1)

    @torch.inference_mode()
    def advance(self, state: State, ids: Sequence[int], c: int, deleted: int | None = None) -> State:
        """``state(ids)`` for a sequence that agrees with ``state.ids`` on its first ``c`` tokens.

        ``deleted``: the first reasoning index whose deletion made ``ids`` (however many went); the
        memo of every candidate before it carries over, shortened to what still holds.
        """
        x = torch.tensor(list(ids), device=self.device)
        hidden, cache = state.hidden[:c], [(k[:, :, :c], v[:, :, :c]) for k, v in state.cache]
        work = max(0, len(ids) - 1 - c)
        if work:
            positions = torch.arange(c, len(ids) - 1, device=self.device)[None]
            new, past = self._forward(x[None, c:-1], positions, cache, None)
            self.useful += work
            hidden = torch.cat([hidden, new[0]])
            cache = [(layer.keys, layer.values) for layer in past.layers]
        tlp = torch.empty(len(ids), dtype=torch.float32, device=self.device)
        tlp[:c] = state.tlp[:c]
        tlp[c:] = self.logprobs(hidden[c - 1:], x[c:])
        memo = None
        if state.memo is not None:
            memo = {}
            if deleted is not None:
                for k, m in state.memo.items():  # candidate k's sequence changes from p + d - len(k) on
                    valid = min(m.valid, deleted - len(k) - k[0])
                    if k[-1] < deleted and valid >= 2:
                        memo[k] = Memo(m.kv, valid, m.cum)
        return State(list(ids), state.p, state.a, tlp, hidden, cache, memo, state.tokens + work, state.useful + work)

    # -- objectives --------------------------------------------------------------------------------

    def objective_of(self, state: State) -> float:
        """The objective of the state's own sequence."""
        start = state.p if self.objective == "reason-answer" else len(state.ids) - state.a
        return float(state.tlp[start:].mean())

    def trajectory(self, ids: Sequence[int], p: int, a: int, order: Sequence[int],
                   steps: Sequence[int] | None = None) -> list[float]:
        """Objective of ``ids`` before any deletion and after each deletion of ``order`` (reasoning indices).

        With ``steps`` (deletion counts), only those states are scored and the others are NaN.
        """
        state = self.state(ids, p, a)
        wanted = [s for s in (range(1, len(order) + 1) if steps is None else steps) if 0 < s <= len(order)]
        trajectory = [float("nan")] * (len(order) + 1)
        trajectory[0] = self.objective_of(state)
        for s, value in zip(wanted, self.score(state, [sorted(order[:s]) for s in wanted])):
            trajectory[s] = value
        return trajectory

    def _candidate(self, state: State, gone: Sequence[int], owner: int = 0) -> _Candidate:
        ids, p, total = state.ids, state.p, len(state.ids)
        gone_at = {p + j for j in gone}
        if not gone_at or min(gone_at) < p or max(gone_at) >= p + state.n:
            raise ValueError(f"deletion {sorted(gone)} is not a set of reasoning indices 0..{state.n - 1}")
        c = min(gone_at)
        after = [ids[t] for t in range(c, total) if t not in gone_at]
        run = tuple(sorted(set(gone)))
        key = run if state.memo is not None and run[-1] - run[0] == len(run) - 1 else None
        memo = state.memo.get(key) if key is not None else None
        resume, known, block = c, None, None
        if memo is not None:  # its cum is None only for the answer objective, which needs no known sum
            resume = c + memo.valid - 1  # its log-prob is known; it is recomputed to predict the next one
            known = memo.cum[memo.valid] if memo.cum is not None else 0.0
            block = memo.kv[:, :, :, :resume - c]
        if self.objective == "reason-answer":
            weight = 1.0 / (total - len(gone_at) - p)
        else:
            weight = 1.0 / state.a
        return _Candidate(c, resume, after[resume - c:], weight, known, block, key, owner)

    def score(self, state: State, deletions: Sequence[Sequence[int]]) -> list[float]:
        """Objective of the state's sequence after deleting each set of reasoning indices in ``deletions``.

        Deletions of one run of adjacent tokens (a token, a word) use and refresh the state's memo.
        """
        return self.score_many([(state, deletions)])[0]

    @torch.inference_mode()
    def score_many(self, requests: Sequence[tuple[State, Sequence[Sequence[int]]]]) -> list[list[float]]:
        """``score`` of several states at once, their candidates packed into the same passes."""
        states = [state for state, _ in requests]
        candidates = [self._candidate(state, gone, owner) for owner, (state, deletions) in enumerate(requests)
                      for gone in deletions]
        if not candidates:
            return [[] for _ in requests]
        reason = self.objective == "reason-answer"
        # prefix_sums[s][t]: sum of state s's tlp[:t+1]; a candidate shares its state's log-probs before c
        prefix_sums = [torch.cumsum(state.tlp.double(), 0).tolist() for state in states] if reason else []
        scores = torch.tensor([x.weight * (prefix_sums[x.owner][x.start - 1] - prefix_sums[x.owner][states[x.owner].p - 1]
                                           + (x.known or 0.0)) if reason else 0.0 for x in candidates],
                              dtype=torch.float64, device=self.device)
        new_lps: dict[int, list[float]] = {i: [] for i, x in enumerate(candidates) if x.key is not None and reason}
        # The first new token of each candidate without a memo, predicted by its state's hidden state before it.
        first = [i for i, x in enumerate(candidates) if x.known is None and (reason or len(x.suffix) <= states[x.owner].a)]
        if first:
            h = torch.stack([states[candidates[i].owner].hidden[candidates[i].start - 1] for i in first])
            lp = self.logprobs(h, torch.tensor([candidates[i].suffix[0] for i in first], device=self.device))
            weights = torch.tensor([candidates[i].weight for i in first], dtype=torch.float64, device=self.device)
            scores.index_add_(0, torch.tensor(first, device=self.device), lp.double() * weights)
            for i, value in zip(first, lp.tolist()):
                if i in new_lps:
                    new_lps[i].append(value)
        segments: dict[int, torch.Tensor] = {}
        for chunk, width in self._chunks(candidates):
            self._score_chunk(states, candidates, chunk, width, scores, new_lps, segments)
        for owner, state in enumerate(states):
            self._remember(state, [(i, x) for i, x in enumerate(candidates) if x.owner == owner], segments, new_lps)
        values = scores.tolist()
        out: list[list[float]] = [[] for _ in requests]
        for x, value in zip(candidates, values):
            out[x.owner].append(value)
        return out

    def _remember(self, state: State, candidates: list[tuple[int, _Candidate]], segments: dict[int, torch.Tensor],
                  new_lps: dict[int, list[float]]) -> None:
        """Store the segment of each candidate with a memo key in the state's memo, within the memory budget."""
        if state.memo is None:
            return
        used = sum(m.valid for m in state.memo.values()) * self.kv_bytes
        for i, x in candidates:
            if x.key is None or i not in segments or used > self.budget:
                continue
            # one copy each, so that a memo never holds on to a whole pass's gathered segments
            kv = segments[i].clone(memory_format=torch.contiguous_format) if x.block is None \
                else torch.cat([x.block, segments[i]], 3)
            cum = None
            if i in new_lps:
                old = state.memo[x.key].cum[: x.reused + 2] if x.known is not None else [0.0]  # through u
                cum = list(old)
                for value in new_lps[i]:
                    cum.append(cum[-1] + value)
            previous = state.memo.get(x.key)
            used += (x.reused + x.length - (previous.valid if previous else 0)) * self.kv_bytes
            state.memo[x.key] = Memo(kv, x.reused + x.length, cum)

    def _chunks(self, candidates: list[_Candidate]) -> list[tuple[list[list[int]], int]]:
        """Candidates packed into rows (first fit, longest segment first), rows grouped into forward passes."""
        order = sorted((i for i, x in enumerate(candidates) if x.length > 0), key=lambda i: -candidates[i].length)
        if not order:
            return []
        width = candidates[order[0]].length
        reach = max(width, max(candidates[i].reused for i in order))  # a row's reused blocks, at most
        rows: list[list[int]] = []
        room: list[list[int]] = []  # free slots, free reused-block room, the state the row's candidates are of
        for i in order:
            x = candidates[i]
            r = next((r for r, (free, extra, owner) in enumerate(room)
                      if owner == x.owner and free >= x.length and extra >= x.reused), None)
            if r is None:
                rows.append([])
                room.append([width, reach, x.owner])
                r = len(rows) - 1
            rows[r].append(i)
            room[r][0] -= x.length
            room[r][1] -= x.reused
        prefix = max(candidates[i].start for i in order)
        keys = prefix + reach + width
        per_row = width * self.act_bytes + keys * self.kv_bytes + width * keys * self.score_bytes
        per_pass = max(1, self.budget // per_row)
        if self.max_rows:
            per_pass = min(per_pass, self.max_rows)
        return [(rows[i: i + per_pass], width) for i in range(0, len(rows), per_pass)]

    def _masks(self, allowed: torch.Tensor, distance: torch.Tensor | None):
        """The additive attention mask of each layer type from the keys a slot may see: one tensor where
        every layer is of one type, else ``{layer type: mask}``; a sliding layer sees keys less than
        its window behind."""
        masks = {}
        for kind, window in self.windows.items():
            seen = allowed if window is None else allowed & (distance < window)
            masks[kind] = torch.zeros(seen.shape, dtype=self.dtype, device=seen.device).masked_fill_(
                ~seen, torch.finfo(self.dtype).min)
        return next(iter(masks.values())) if len(masks) == 1 else masks

    @staticmethod
    def _prefixes(states: list[State], row_states: list[int], layer: int, kv: int, prefix: int) -> torch.Tensor:
        """Keys (``kv`` 0) or values (1) of each row's state at positions ``< prefix``: ``[R, heads, prefix, d]``;
        zeros past a shorter state's end (its rows' masks never reach them)."""
        if len(set(row_states)) == 1:  # one state: a view, no copy
            return states[row_states[0]].cache[layer][kv][:, :, :prefix].expand(len(row_states), -1, -1, -1)
        own = {}
        for s in set(row_states):
            t = states[s].cache[layer][kv][0, :, :prefix]
            own[s] = torch.nn.functional.pad(t, (0, 0, 0, prefix - t.shape[1]))
        return torch.stack([own[s] for s in row_states])

    def _slots(self, states: list[State], candidates: list[_Candidate], placed: list[tuple[int, int, int, int]],
               width: int, n_rows: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Where each placed candidate's segment sits in the packed rows, computed with numpy: one Python
        step per candidate, none per slot (host time per pass is what a GPU waits on).

        Returns ``grid[field, row, slot]`` for the fields ``IDS``, ``POSITIONS``, ``SEES`` (prefix keys
        below this are visible), ``LO``/``HI`` (the visible reused-block keys) and ``START`` (the
        segment's first slot); padding sees key 0 and itself, so no softmax row is empty. And per
        used slot, in placing order: ``flat`` (row * width + slot), ``row``, ``slot``, ``target`` (the
        token it predicts), ``candidate``, ``weight``, ``need`` (the objective needs its log-prob)
        and ``memo`` (its key/values go to a memo).
        """
        x = [candidates[i] for i, *_ in placed]
        per = {name: np.array(values) for name, values in zip(
            ("candidate", "row", "slot", "offset"), zip(*placed))}
        length = np.array([c.length for c in x])
        each = np.repeat(np.arange(len(x)), length)  # the placed candidate of each used slot
        j = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)  # slot within its segment
        suffix = np.fromiter((t for c in x for t in c.suffix), dtype=np.int64, count=sum(len(c.suffix) for c in x))
        source = np.repeat(np.cumsum(length + 1) - (length + 1), length) + j  # suffix[j] of each used slot
        slot = per["slot"][each] + j
        flat = per["row"][each] * width + slot
        grid = np.zeros((6, n_rows * width), dtype=np.int64)
        grid[SEES] = 1
        grid[START] = np.tile(np.arange(width), n_rows)
        grid[IDS, flat] = suffix[source]
        grid[POSITIONS, flat] = np.array([c.resume for c in x])[each] + j
        grid[SEES, flat] = np.array([c.start for c in x])[each]
        grid[LO, flat] = per["offset"][each]
        grid[HI, flat] = (per["offset"] + np.array([c.reused for c in x]))[each]
        grid[START, flat] = per["slot"][each]
        # slot j predicts suffix[j + 1]; the answer objective needs the last a log-probs only
        first = np.zeros(len(x), dtype=np.int64) if self.objective == "reason-answer" else \
            np.maximum(0, length - np.array([states[c.owner].a for c in x]))
        used = {"flat": flat, "row": per["row"][each], "slot": slot, "target": suffix[source + 1],
                "candidate": per["candidate"][each], "weight": np.array([c.weight for c in x], dtype=np.float64)[each],
                "need": j >= first[each], "memo": np.array([c.key is not None for c in x], dtype=bool)[each]}
        return grid.reshape(6, n_rows, width), used

    def _score_chunk(self, states: list[State], candidates: list[_Candidate], rows: list[list[int]], width: int,
                     scores: torch.Tensor, new_lps: dict[int, list[float]], segments: dict[int, torch.Tensor]) -> None:
        """One forward pass over packed rows (each of one state's candidates); adds each candidate's
        weighted log-probs to ``scores``."""
        device = self.device
        prefix = max(candidates[i].start for row in rows for i in row)
        row_states = [candidates[row[0]].owner for row in rows]
        placed: list[tuple[int, int, int, int]] = []  # candidate, row, first slot, first reused-block key
        row_reused = []  # keys of each row's reused blocks
        for r, row in enumerate(rows):
            slot = offset = 0
            for i in row:
                placed.append((i, r, slot, offset))
                slot += candidates[i].length
                offset += candidates[i].reused
            row_reused.append(offset)
            self.useful += slot
            states[row_states[r]].useful += slot
            states[row_states[r]].tokens += width
        extra = max(row_reused)
        grid, used = self._slots(states, candidates, placed, width, len(rows))
        t = torch.from_numpy(grid).to(device)  # one copy: ids, positions and mask bounds per slot
        layers = len(states[0].cache)
        blocks = None  # [layers, 2, R, kv_heads, extra, head_dim]: each row's reused blocks side by side, zero-padded
        if extra:
            k = states[0].cache[0][0]
            zeros = k.new_zeros(layers, 2, k.shape[1], extra, k.shape[3])
            blocks = torch.stack([torch.cat([candidates[i].block for i in row if candidates[i].reused]
                                            + [zeros[:, :, :, :extra - reused]], 3)
                                  for row, reused in zip(rows, row_reused)], 2)
        cache = []
        for layer in range(layers):
            rows_kv = [self._prefixes(states, row_states, layer, kv, prefix) for kv in (0, 1)]
            if blocks is not None:
                rows_kv = [torch.cat([rows_kv[kv], blocks[layer, kv]], 2) for kv in (0, 1)]
            cache.append(tuple(rows_kv))
        key_prefix = torch.arange(prefix, device=device)[None, None, :]
        key_block = torch.arange(extra, device=device)[None, None, :]
        slots = torch.arange(width, device=device)
        allowed = torch.cat([
            key_prefix < t[SEES][:, :, None],
            (key_block >= t[LO][:, :, None]) & (key_block < t[HI][:, :, None]),
            (slots[None, None, :] >= t[START][:, :, None]) & (slots[None, None, :] <= slots[None, :, None]),
        ], dim=-1)[:, None]
        if any(self.windows.values()):  # key positions: the prefix's, each row's reused blocks', its slots'
            block_positions = np.zeros((len(rows), extra), dtype=np.int64)
            for i, r, _, offset in placed:
                x = candidates[i]
                block_positions[r, offset: offset + x.reused] = np.arange(x.start, x.resume)
            keys = torch.cat([key_prefix[0].expand(len(rows), -1), torch.from_numpy(block_positions).to(device),
                              t[POSITIONS]], dim=-1)
            distance = t[POSITIONS][:, None, :, None] - keys[:, None, None, :]
        else:
            distance = None
        mask = self._masks(allowed, distance)
        hidden, past = self._forward(t[IDS], t[POSITIONS], cache, mask)
        needed = used["need"]
        if needed.any():
            picked = torch.from_numpy(np.stack([used["flat"][needed], used["target"][needed],
                                                used["candidate"][needed]])).to(device)
            lp = self.logprobs(hidden.reshape(-1, hidden.shape[-1])[picked[0]], picked[1])
            weights = torch.from_numpy(used["weight"][needed]).to(device)
            scores.index_add_(0, picked[2], lp.double() * weights)
            if new_lps:
                for i, value in zip(used["candidate"][needed].tolist(), lp.tolist()):
                    if i in new_lps:
                        new_lps[i].append(value)
        keep = used["memo"]  # slots of candidates with a memo key
        if keep.any():  # their key/values, gathered for every layer at once: [layers, 2, kv_heads, slots, head_dim]
            row_index = torch.from_numpy(used["row"][keep]).to(device)
            key_index = torch.from_numpy(prefix + extra + used["slot"][keep]).to(device)
            gathered = torch.stack([torch.stack((layer.keys[row_index, :, key_index],
                                                 layer.values[row_index, :, key_index])) for layer in past.layers])
            gathered = gathered.permute(0, 1, 3, 2, 4)
            kept = [i for i, *_ in placed if candidates[i].key is not None]
            for i, segment in zip(kept, gathered.split([candidates[i].length for i in kept], 3)):
                segments[i] = segment
