"""Ordering baselines (``prunelens.pruning.baselines``) against values by hand."""

import torch

from prunelens.layout import render
from prunelens.ops import token_logprobs
from prunelens.pruning import prune


def test_baseline_orders(tiny_model, short_chains):
    layout = render(short_chains[4], tiny_model.tokenizer)
    n = len(layout.reasoning_ids)
    assert prune(tiny_model, layout, method="truncate").order == list(range(n - 1, -1, -1))
    r1 = prune(tiny_model, layout, method="random", seed=1, example_id="x")
    assert r1.order == prune(tiny_model, layout, method="random", seed=1, example_id="x").order
    assert r1.order != prune(tiny_model, layout, method="random", seed=2, example_id="x").order
    assert r1.order != prune(tiny_model, layout, method="random", seed=1, example_id="y").order
    ids = layout.ids  # surprisal: lowest first, from one independent forward pass
    with torch.no_grad():
        logits = tiny_model.hf(torch.tensor([ids])).logits[0]
    p = len(layout.prompt_ids)
    lp = token_logprobs(logits[p - 1: p + n - 1], torch.tensor(layout.reasoning_ids))
    assert prune(tiny_model, layout, method="surprisal").order == sorted(range(n), key=lambda j: -float(lp[j]))


def _plain_attentions(model, layout):
    """Every layer's attention pattern [1, heads, T, T] from plain transformers (eager)."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(model.path, attn_implementation="eager").eval()
    with torch.no_grad():
        return plain(torch.tensor([layout.ids]), output_attentions=True).attentions


def test_attention_baseline_follows_attention_summed_by_hand(tiny_model, short_chains):
    layout = render(short_chains[9], tiny_model.tokenizer)
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    attentions = _plain_attentions(tiny_model, layout)
    received = torch.stack([a[0, :, p + n:, p: p + n].mean(1) for a in attentions]).mean((0, 1))
    expected = sorted(range(n), key=lambda j: float(received[j]))
    assert prune(tiny_model, layout, method="attention").order == expected


def test_h2o_equals_attention_received_summed_by_hand(tiny_model, short_chains):
    layout = render(short_chains[9], tiny_model.tokenizer)
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    received = torch.zeros(n, dtype=torch.float64)
    for a in _plain_attentions(tiny_model, layout):  # every later query, every head, every layer
        for j in range(n):
            received[j] += a[0, :, p + j + 1:, p + j].double().sum()
    expected = sorted(range(n), key=lambda j: float(received[j]))
    assert prune(tiny_model, layout, method="h2o").order == expected
