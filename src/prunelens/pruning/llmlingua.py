"""LLMLingua's token-level compression, with the pruner as the small model.

- ``llmlingua``: the selection rules of the ``llmlingua`` package, version 0.2.2
  (``PromptCompressor.compress_prompt`` with only the token-level filter: no context or sentence
  filter, ``condition_compare`` off, ``keep_split`` off), re-implemented and tested against the
  real package's outputs (``tests/data/llmlingua-0.2.2``). What the package does, rule by rule
  (``llmlingua_keep``):

  1. the chain alone is compressed, tokenised without special tokens (the package never shows its
     instruction or question to the model; they only shrink its budget, and none is given here);
  2. budget ``target = n * rate``; one keep ratio for every window, ``ratio = clamp(target / (n + 3))``;
  3. windows of ``iterative_size`` tokens (the first one token shorter); the tail after the last
     full window is never compressed, and the chain's last token is kept;
  4. token ``j`` is kept when the loss of token ``j + 1`` (the *next* token) is strictly above a
     threshold, the ``int(len * ratio)``-th largest of *all* current losses (compressed windows,
     the current one and the uncompressed rest), recomputed for every window;
  5. window 0 and every window's last token are judged by the losses of one pass over the whole
     chain; window ``w >= 1`` by a pass over the compressed window ``w - 1`` and window ``w`` on top
     of the cache of everything before, which is then cut back to before window ``w``;
  6. the kept token ids are decoded in one piece.

  The package's ``rate`` applies to its whole prompt and lands the chain at 0.21-0.54 of its tokens
  for a rate of 0.5; here the rate is searched per chain so that the kept share is nearest the
  run's keep ratio (``calibrated_keep``), as a comparison at matched length needs. A text method:
  its run holds the compressed chains (``texts``).
- ``llmlingua-segments``: this project's earlier LLMLingua-*style* ordering, not the package's
  rules: segments of ``segment_tokens``, each token's self-information given the prompt and the
  kept tokens of earlier segments, the lowest of each segment dropped to the target ratio (the
  run's keep ratio, or 0.5 when it ranks every token); those deletions come first in the order,
  then the rest, each group spread evenly over segments, lowest self-information first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..errors import SettingsError
from .registry import Ordering, Ranking, register, setting

CALIBRATION_STEPS = 12  # bisection steps of the rate search


def _schedule(length: int, size: int) -> list[int]:
    """The package's window lengths for one context of ``length`` (its tokens + 2): the first window is
    ``size - 1`` tokens, then full windows (the partial last entry is never reached)."""
    windows, last = [], 1
    if last + length >= size:
        windows.append(size - last)
        last = last + length - size
        if last > size:
            windows += [size] * (last // size)
            last -= (last // size) * size
        if last:
            windows.append(last)
    else:
        windows.append(length)
    return windows


def _losses(hf, ids: list[int], past: int, end: int, cache):
    """Next-token losses of ``ids[past:end]`` on top of ``cache`` (holding ``ids[:past]``), float32."""
    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache

    x = torch.tensor([ids[past:end]])
    with torch.inference_mode():
        out = hf(input_ids=x, attention_mask=torch.ones(1, end, dtype=torch.long),
                 past_key_values=cache if cache is not None else DynamicCache(), use_cache=True)
    loss = F.cross_entropy(out.logits[0, :-1].float(), torch.tensor(ids[past + 1:end]), reduction="none")
    return loss.tolist(), out.past_key_values


def _cut(cache, length: int):
    """The cache's first ``length`` positions."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=[(layer.keys[:, :, :length], layer.values[:, :, :length]) for layer in cache.layers])


def _threshold(scores: list[float], ratio: float) -> float:
    if ratio == 1.0:
        return float("-inf")
    k = max(0, min(len(scores) - 1, int(len(scores) * ratio) - 1))
    import numpy as np

    return float(np.sort(np.asarray(scores, dtype=np.float32))[::-1][k])


def llmlingua_keep(hf, ids: Sequence[int], rate: float, iterative_size: int, instruction_tokens: int = 0) -> list[int]:
    """Positions of ``ids`` that llmlingua 0.2.2 keeps at ``rate`` (see the module docstring);
    ``instruction_tokens``: the length of an instruction counted in the budget, as the package counts it."""
    import numpy as np

    size, n = iterative_size, len(ids)
    target = (instruction_tokens + n) * rate - instruction_tokens
    ratio = max(min(1.0, target / (n + 2 + 1)), 0.0)
    windows = _schedule(n + 2, size)
    cur, pos = list(ids), list(range(n))
    scores: list[float] | None = None
    cache, ready, end, step = None, 0, min(size, n), 0
    while end <= len(cur):
        past = 0 if cache is None else cache.get_seq_length()
        loss, new = _losses(hf, cur, past, end if step else len(cur), cache)
        if not loss:
            break
        if scores is None:
            scores = loss
        else:
            scores[ready:end - 1] = loss
        if step:
            cache = _cut(new, end - size)
        ready = end - size
        delta = windows[step]
        threshold = _threshold(scores, ratio)
        e = end - size + delta
        need = [np.float32(s) > threshold for s in scores] + [scores[0] > 0]
        need[e:] = [True] * len(need[e:])  # slices as the package's, negative ends included
        need[:e - delta] = [True] * len(need[:e - delta])
        dropped = sum(not keep for keep in need[:e])
        scores = [s for s, keep in zip(scores, need[:-1]) if keep]
        cur = [t for t, keep in zip(cur, need) if keep]
        pos = [p for p, keep in zip(pos, need) if keep]
        end = e - dropped + size
        step += 1
    return pos


def calibrated_keep(hf, ids: Sequence[int], keep_ratio: float, iterative_size: int) -> list[int]:
    """``llmlingua_keep`` at the rate whose kept count is nearest ``round(keep_ratio * n)`` (ties: the
    lower rate), found by bisection over rates in [0, 1]."""
    want = int(round(keep_ratio * len(ids)))
    tried: dict[float, list[int]] = {}

    def kept(rate: float) -> list[int]:
        if rate not in tried:
            tried[rate] = llmlingua_keep(hf, ids, rate, iterative_size)
        return tried[rate]

    low, high = 0.0, 1.0
    for _ in range(CALIBRATION_STEPS):
        middle = (low + high) / 2
        if len(kept(middle)) < want:
            low = middle
        else:
            high = middle
    kept(low), kept(high)
    best = min(tried, key=lambda r: (abs(len(tried[r]) - want), r))
    return tried[best]


def _positive(tokens: int) -> None:
    if tokens < 1:
        raise SettingsError(f"segment_tokens {tokens} is not a positive number of tokens")


@dataclass(frozen=True)
class LLMLingua:
    """llmlingua 0.2.2's token-level rules, one compressed chain per run at its keep ratio."""

    name: ClassVar[str] = "llmlingua"
    help: ClassVar[str] = ("llmlingua 0.2.2's token-level rules (next-token loss above a quantile of every loss, "
                           "windows of segment_tokens), its rate set per chain to reach the keep ratio")
    segment_tokens: int = setting(20, "llmlingua: tokens per window (the package's iterative_size); "
                                      "llmlingua-segments: tokens per segment")

    def __post_init__(self) -> None:
        _positive(self.segment_tokens)

    def check(self, config) -> None:
        if not config.keep_ratio:
            raise SettingsError("llmlingua compresses to one keep ratio: give --keep-ratio (a run per ratio)")

    def prepare(self, model, examples: Sequence, config) -> None:
        """Nothing to check beyond the config."""

    def compress(self, model, example, n: int, config) -> dict[float, str]:
        ids = model.tokenizer(example.reasoning, add_special_tokens=False)["input_ids"]
        kept = calibrated_keep(model.hf, ids, config.keep_ratio, self.segment_tokens)
        return {config.keep_ratio: model.tokenizer.decode([ids[j] for j in kept], clean_up_tokenization_spaces=False)}


@dataclass(frozen=True)
class LLMLinguaSegments(Ordering):
    """This project's earlier LLMLingua-style ordering (see the module docstring)."""

    name: ClassVar[str] = "llmlingua-segments"
    help: ClassVar[str] = ("LLMLingua-style (not the package's rules): segment by segment, delete the tokens of "
                           "least self-information given the kept text before them")
    segment_tokens: int = setting(20, "llmlingua: tokens per window (the package's iterative_size); "
                                      "llmlingua-segments: tokens per segment")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.segment_tokens)

    def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
        from ..ops import n_to_delete
        from ..schema import HEADLINE_KEEP

        target = config.keep_ratio or HEADLINE_KEEP
        reasoning, n, size = layout.reasoning_ids, len(layout.reasoning_ids), self.segment_tokens
        context, keys = list(layout.prompt_ids), {}
        for start in range(0, n, size):
            segment = range(start, min(start + size, n))
            state = engine.state(context + [reasoning[j] for j in segment], len(context), 0)
            info = (-state.tlp[len(context):]).tolist()  # self-information, as the engine scores it
            ascending = sorted(segment, key=lambda j: info[j - start])
            dropped = n_to_delete(len(segment), target)
            for q, j in enumerate(ascending):
                keys[j] = (q >= dropped, (q + 1) / len(segment), info[j - start])
            context += [reasoning[j] for j in segment if j not in ascending[:dropped]]
        return Ranking(sorted(range(n), key=lambda j: keys[j])[:n_delete])


for _method in (LLMLingua, LLMLinguaSegments):
    register(_method)
