"""What one hooked forward pass tells about each reasoning token: attention, sparsity, surprisal.

The computation behind the ``features`` stage, and behind the methods that rank from one hooked
pass (``attention``, ``h2o``, ``learned``).

The sequence is the layout's ``prompt + reasoning + post``; ``k`` is a reasoning token's position in
it. Hooks on the TransformerLens bridge reduce each layer's activations to per-token numbers at
once, so no layer's full ``[heads, seq, seq]`` pattern outlives its hook. Layers and heads count
from 0. Columns (one row per reasoning token):

- ``attn_answer.L{l}.H{h}``: attention paid to ``k`` by the post tokens, mean over those queries;
  ``attn_answer.L{l}`` = mean over heads, ``attn_answer.mean`` = mean over layers and heads.
- ``attn_later.L{l}.H{h}`` (and means): the same, over all later queries (reasoning and post).
- ``attn_next.L{l}``: attention from the next position, mean over heads.
- ``attn_to_prompt.L{l}``: the share of ``k``'s own attention that goes to the prompt, mean over heads.
- ``mlp_sparsity.L{l}``: share of MLP hidden units (the down projection's input) at ``k`` whose
  magnitude is below ``MLP_THRESHOLD`` times that position's root-mean-square activation
  (a scale-free threshold, comparable across layers and models).
- ``resid_hoyer.L{l}``: Hoyer sparsity of the residual stream after layer ``l``:
  ``(sqrt(d) - |x|_1 / |x|_2) / (sqrt(d) - 1)``, 0 for a flat vector, 1 for a one-hot one.
- ``surprisal``: ``-log p(token | everything before it)``; ``position_norm`` = position / N;
  ``is_digit``, ``is_punct``, ``token_chars`` from the token's text.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import SettingsError
from .ops import token_logprobs
from .schema import HEADLINE_FEATURE, FeatureName

if TYPE_CHECKING:
    from .layout import Layout

MLP_THRESHOLD = 0.1
FAMILIES = ("attn", "mlp", "resid")


def hoyer(x: torch.Tensor) -> torch.Tensor:
    """Hoyer sparsity of each vector along the last axis (0 flat, 1 one-hot)."""
    d = x.shape[-1]
    ratio = x.abs().sum(-1) / x.norm(dim=-1).clamp_min(1e-12)
    return (math.sqrt(d) - ratio) / (math.sqrt(d) - 1)


def small_share(x: torch.Tensor, threshold: float = MLP_THRESHOLD) -> torch.Tensor:
    """Share of entries along the last axis below ``threshold`` x that vector's RMS, in magnitude."""
    rms = x.pow(2).mean(-1, keepdim=True).sqrt()
    return (x.abs() < threshold * rms).float().mean(-1)


def _attention_reductions(pattern: torch.Tensor, p: int, n: int) -> dict[str, torch.Tensor]:
    """Per-head reductions of one layer's pattern ``[heads, T, T]`` for reasoning keys ``p..p+n-1``."""
    total = pattern.shape[-1]
    keys = torch.arange(p, p + n, device=pattern.device)
    answer = pattern[:, p + n:, p: p + n].mean(1)  # [heads, n]
    column = pattern[:, :, p: p + n].sum(1) - pattern[:, keys, keys]  # attention from later queries
    later = column / (total - 1 - keys).clamp_min(1)
    nxt = pattern[:, keys + 1, keys].mean(0)  # the next position always exists: post follows
    to_prompt = pattern[:, p: p + n, :p].sum(-1).mean(0)
    return {"attn_answer": answer, "attn_later": later, "attn_next": nxt, "attn_to_prompt": to_prompt}


@torch.inference_mode()
def sequence_features(model, ids: Sequence[int], p: int, n: int, layers: Sequence[int] | None = None,
                      families: Sequence[str] = FAMILIES) -> dict[str, np.ndarray]:
    """Feature columns (each of length ``n``) for the reasoning tokens ``p..p+n-1`` of ``ids``."""
    layers = list(range(model.n_layers)) if layers is None else list(layers)
    bad = [l for l in layers if not 0 <= l < model.n_layers]
    if bad:
        raise SettingsError(f"layers {bad} do not exist: the model has layers 0..{model.n_layers - 1}")
    out: dict[str, torch.Tensor] = {}

    def attn_hook(layer):
        def hook(pattern, hook):
            for name, value in _attention_reductions(pattern[0].float(), p, n).items():
                if value.dim() == 2:
                    for h in range(value.shape[0]):
                        out[str(FeatureName(name, layer, h))] = value[h]
                    value = value.mean(0)
                out[str(FeatureName(name, layer))] = value
        return hook

    def mlp_hook(layer):
        def hook(x, hook):
            out[str(FeatureName("mlp_sparsity", layer))] = small_share(x[0, p: p + n].float())
        return hook

    def resid_hook(layer):
        def hook(x, hook):
            out[str(FeatureName("resid_hoyer", layer))] = hoyer(x[0, p: p + n].float())
        return hook

    hooks = []
    for layer in layers:
        if "attn" in families:
            hooks.append((f"blocks.{layer}.attn.hook_pattern", attn_hook(layer)))
        if "mlp" in families:
            hooks.append((f"blocks.{layer}.mlp.out.hook_in", mlp_hook(layer)))
        if "resid" in families:
            hooks.append((f"blocks.{layer}.hook_out", resid_hook(layer)))
    x = torch.tensor([list(ids)], device=model.device)
    logits = model.bridge.run_with_hooks(x, fwd_hooks=hooks)
    out["surprisal"] = -token_logprobs(logits[0, p - 1: p + n - 1], x[0, p: p + n])
    if "attn" in families:
        for name in ("attn_answer", "attn_later"):
            out[str(FeatureName(name, mean=True))] = torch.stack([out[str(FeatureName(name, l))] for l in layers]).mean(0)
    return {name: value.detach().cpu().numpy() for name, value in out.items()}


def answer_attention(model, layout: Layout) -> list[float]:
    """Attention each reasoning token receives from the post tokens, mean over layers and heads."""
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    return sequence_features(model, layout.ids, p, n, families=("attn",))[HEADLINE_FEATURE].tolist()


def _lexical(texts: Sequence[str]) -> dict[str, np.ndarray]:
    stripped = [t.strip() for t in texts]
    return {
        "is_digit": np.array([bool(s) and s.isdigit() for s in stripped]),
        "is_punct": np.array([bool(s) and all(c in string.punctuation for c in s) for s in stripped]),
        "token_chars": np.array([len(s) for s in stripped]),
    }


def token_features(model, prompt: Sequence[int], reasoning: Sequence[int], post: Sequence[int],
                   texts: Sequence[str], layers: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Every feature column of the reasoning tokens of ``prompt + reasoning + post``: one hooked pass."""
    n = len(reasoning)
    columns = sequence_features(model, list(prompt) + list(reasoning) + list(post), len(prompt), n, layers)
    columns.update(position_norm=np.arange(n) / n, **_lexical(texts))
    return columns
