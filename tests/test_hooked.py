"""One hooked forward pass (``prunelens.hooked``): attention reductions equal plain transformers, sparsity by hand."""

import math

import numpy as np
import pytest
import torch

from prunelens.hooked import hoyer, sequence_features, small_share
from prunelens.layout import render


def test_hoyer_and_small_share_on_hand_built_activations():
    one_hot = torch.tensor([[0.0, 0.0, 5.0, 0.0]])
    flat = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    assert torch.allclose(hoyer(one_hot), torch.tensor([1.0]))
    assert torch.allclose(hoyer(flat), torch.tensor([0.0]), atol=1e-6)
    half = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # L1/L2 = sqrt(2): (2 - sqrt 2) / (2 - 1)
    assert math.isclose(float(hoyer(half)), 2 - math.sqrt(2), rel_tol=1e-6)
    # RMS of [10, 0.6, 0.01, -0.02] is ~5.009; 10% of it is ~0.501: 0.01 and -0.02 are small, 0.6 is not
    assert math.isclose(float(small_share(torch.tensor([[10.0, 0.6, 0.01, -0.02]]))), 0.5)
    assert float(small_share(torch.tensor([[1.0, -1.0, 1.0, -1.0]]))) == 0.0


def test_attention_features_equal_plain_transformers(model, short_chains):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(model.path, attn_implementation="eager").eval()
    layout = render(short_chains[10], model.tokenizer)
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    feats = sequence_features(model, layout.ids, p, n)
    with torch.no_grad():
        out = plain(torch.tensor([layout.ids]), output_attentions=True)
    assert len(out.attentions) == model.n_layers
    total = len(layout.ids)
    for layer, att in enumerate(out.attentions):
        a = att[0].double()  # [heads, T, T]
        for head in range(model.n_heads):
            answer = a[head, p + n:, p: p + n].mean(0)
            later = torch.stack([a[head, k + 1:, k].mean() for k in range(p, p + n)])
            assert np.allclose(feats[f"attn_answer.L{layer}.H{head}"], answer.numpy(), atol=1e-5)
            assert np.allclose(feats[f"attn_later.L{layer}.H{head}"], later.numpy(), atol=1e-5)
        nxt = torch.stack([a[:, k + 1, k].mean() for k in range(p, p + n)])
        to_prompt = a[:, p: p + n, :p].sum(-1).mean(0)
        assert np.allclose(feats[f"attn_next.L{layer}"], nxt.numpy(), atol=1e-5)
        assert np.allclose(feats[f"attn_to_prompt.L{layer}"], to_prompt.numpy(), atol=1e-5)
    logp = out.logits[0].log_softmax(-1)
    surprisal = [-float(logp[k - 1, layout.ids[k]]) for k in range(p, p + n)]
    assert np.allclose(feats["surprisal"], surprisal, atol=1e-4)
    assert total == p + n + len(layout.post_ids)


def test_layers_option_and_bad_layers(tiny_model, short_chains, tmp_path):
    layout = render(short_chains[0], tiny_model.tokenizer)
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    only = sequence_features(tiny_model, layout.ids, p, n, layers=[1])
    assert "attn_answer.L1" in only and "attn_answer.L0" not in only and "mlp_sparsity.L0" not in only
    with pytest.raises(ValueError, match="layers \\[7\\] do not exist"):
        sequence_features(tiny_model, layout.ids, p, n, layers=[7])
