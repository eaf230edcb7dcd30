"""Evaluation of distilled students: intervals, paired tests, hedges, broken numbers, drift."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from scipy.stats import norm

from helpers import with_hf
from prunelens.data import Example
from prunelens.distill.evaluate import (
    hedge_count,
    hedge_rate,
    kl_drift,
    mcnemar_exact,
    paired_permutation,
    wilson_interval,
)
from prunelens.numbers import broken_number_share, result_kept_share

QUESTIONS = ["What is 2 + 3?", "Tom has 4 apples and eats 1. How many are left?", "Name a prime number."]


def test_wilson_interval_matches_the_formula():
    z, n, p = norm.ppf(0.975), 10, 0.8
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert wilson_interval(8, 10) == pytest.approx((centre - half, centre + half), abs=1e-9)
    z = norm.ppf(0.95)
    centre, half = (0.5 + z**2 / 8) / (1 + z**2 / 4), z / (1 + z**2 / 4) * math.sqrt(0.25 / 4 + z**2 / 64)
    assert wilson_interval(2, 4, confidence=0.9) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_mcnemar_exact_by_hand():
    a = [True] * 6 + [False] + [True, True, False]
    b = [False] * 6 + [True] + [True, True, False]
    p = 2 * (math.comb(7, 0) + math.comb(7, 1)) / 2**7  # = 0.125
    assert mcnemar_exact(a, b) == pytest.approx({"n": 10, "a_only": 6, "b_only": 1, "p_value": p})
    assert mcnemar_exact(b, a) == pytest.approx({"n": 10, "a_only": 1, "b_only": 6, "p_value": p})
    assert mcnemar_exact([True, False], [True, False]) == {"n": 2, "a_only": 0, "b_only": 0, "p_value": 1.0}
    with pytest.raises(ValueError, match="length"):
        mcnemar_exact([True, False], [True])


def test_paired_permutation_by_hand():
    # differences 1, 1, 1, 0.5: of the 16 sign patterns only all-plus and all-minus reach |mean| 0.875
    assert paired_permutation([1, 1, 1, 1], [0, 0, 0, 0.5]) == pytest.approx(
        {"n": 4, "difference": 0.875, "p_value": 2 / 16})
    # differences 1, 1, 1, 0: the zero's sign is free, so 4 of 16 patterns reach |mean| 0.75
    assert paired_permutation([0, 0, 0, 0], [1, 1, 1, 0])["p_value"] == pytest.approx(4 / 16)
    assert paired_permutation([1, 0.5], [1, 0.5]) == {"n": 2, "difference": 0.0, "p_value": 1.0}
    big = paired_permutation([1] * 30 + [0] * 70, [0] * 100)  # 2 of 2^30 patterns: resampled, p ~ 1e-4
    assert big["difference"] == pytest.approx(0.3) and 0 < big["p_value"] < 1e-3
    with pytest.raises(ValueError, match="length"):
        paired_permutation([1, 0], [1])


def test_hedges_count_whole_phrases_once():
    assert hedge_count("The waiter waited; we await it, maybe.") == 1                        # maybe
    # let me verify, wait, hmm, i think
    assert hedge_count("Let me verify: 3 + 4 = 7. Wait, hmm, I THINK it is right.") == 4
    assert hedge_count("Double-check:\nit   seems fine. Actually, alternatively it might be 6.") == 5
    assert hedge_count("Let\u2019s check the mighty sum, checking it twice.") == 1        # let's check
    assert hedge_count("So 3 + 4 = 7.") == 0


def test_hedge_rate_is_per_hundred_tokens():
    assert hedge_rate(["maybe wait", "no doubts here", "perhaps"], [10, 30, 10]) == pytest.approx(3 * 100 / 50)
    assert math.isnan(hedge_rate(["", ""], [0, 0]))
    with pytest.raises(ValueError):
        hedge_rate(["maybe"], [1, 2])


def test_broken_numbers_are_those_the_problem_never_states():
    problem = "A wall has 31 blocks: 4 red, 8 green and $1,200 of paint.\nThere are 31-4-8 = 19 blue blocks.\n19"
    assert broken_number_share(["There are 14 =9 blue"], [problem]) == 1.0      # 14 and 9: cut and fused
    assert broken_number_share(["31-4 = 19 blue"], [problem]) == 0.0           # whole numbers deleted only
    assert broken_number_share(["1200 of paint, -8 = 9"], [problem]) == pytest.approx(1 / 3)  # 1,200 is 1200; sign dropped
    # pooled over chains: 1 of the 4 numbers stated is broken
    assert broken_number_share(["4 red, 3", "2 and 2"], [problem, "2 + 2"]) == pytest.approx(1 / 4)
    assert math.isnan(broken_number_share(["blue blocks", ""], [problem, problem]))
    with pytest.raises(ValueError):
        broken_number_share(["4"], [problem, problem])


def test_result_kept_is_the_full_chains_last_number_still_stated():
    chain = "There are 31-4-8 = 19 blue blocks.\nSo $1,200 buys 19 + 1 = 20 more."
    assert result_kept_share(["31-4-8 = 19 blue. 19 + 1 = 20"], [chain]) == 1.0
    assert result_kept_share(["There are 31-4-8 = 19 blue blocks. So"], [chain]) == 0.0  # truncated: last step cut
    assert result_kept_share(["31-4-8 = 19 blue. 19 + 1 = 2"], [chain]) == 0.0         # 20 cut short is not 20
    assert result_kept_share(["$20.00"], [chain]) == 1.0                               # normalised as the chain's
    # per chain: 1 of 2 kept; a chain that states no number is left out
    assert result_kept_share(["20", "nothing", "blue"], [chain, "1,000 then 5", "blue blocks"]) == 0.5
    assert math.isnan(result_kept_share(["4"], ["no numbers"]))
    with pytest.raises(ValueError):
        result_kept_share(["4"], [chain, chain])


PAIRS = [Example("a", "What is 2 + 3?", "2 + 3 = 5.", "5"),
         Example("b", "Tom has 4 apples and eats 1. How many are left?", "He has 4 - 1 = 3 apples left over.", "3")]


class _Changed:
    """An hf model whose logits are another's, changed in place by ``change(logits)``."""

    def __init__(self, hf, change):
        self.hf, self.change = hf, change

    def __call__(self, input_ids, attention_mask):
        logits = self.hf(input_ids=input_ids, attention_mask=attention_mask).logits.clone()
        self.change(logits)
        return SimpleNamespace(logits=logits)


def test_kl_drift_is_zero_for_the_same_model_and_positive_when_perturbed(tiny_model):
    assert abs(kl_drift(tiny_model, tiny_model, PAIRS)) < 1e-6
    hf = copy.deepcopy(tiny_model.hf)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    drift = kl_drift(tiny_model, with_hf(tiny_model, hf), PAIRS)
    assert drift > 1e-4
    assert kl_drift(tiny_model, with_hf(tiny_model, hf), PAIRS, batch_size=1) == pytest.approx(drift, rel=1e-4)


def test_kl_drift_reads_only_the_reply_tokens(tiny_model):
    tok = tiny_model.tokenizer
    spans = []  # per pair: (prompt tokens, all tokens), from the chat template by hand
    for e in PAIRS:
        user, reply = [{"role": "user", "content": e.question}], f"{e.reasoning}\nAnswer: {e.answer}"
        prompt = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(user + [{"role": "assistant", "content": reply}], tokenize=False)
        spans.append((len(tok(prompt, add_special_tokens=False)["input_ids"]),
                      len(tok(full, add_special_tokens=False)["input_ids"])))
    assert spans[0][1] != spans[1][1]  # the batch is padded

    def outside_reply(logits):  # every position but those predicting a reply token: prompt, last token, padding
        for i, (n_prompt, n_all) in enumerate(spans):
            logits[i, :n_prompt - 1] += 5 * torch.randn_like(logits[i, :n_prompt - 1])
            logits[i, n_all - 1:] += 5 * torch.randn_like(logits[i, n_all - 1:])

    def first_reply_token(logits):
        for i, (n_prompt, _) in enumerate(spans):
            logits[i, n_prompt - 1] += 5 * torch.randn_like(logits[i, n_prompt - 1])

    assert abs(kl_drift(tiny_model, with_hf(tiny_model, _Changed(tiny_model.hf, outside_reply)), PAIRS)) < 1e-6
    assert kl_drift(tiny_model, with_hf(tiny_model, _Changed(tiny_model.hf, first_reply_token)), PAIRS) > 1e-3


def test_kl_drift_is_base_to_student_by_hand(tiny_model):
    def fixed(probs):  # logits that give ``probs`` over a 2-token vocabulary at every position
        return lambda input_ids, attention_mask: SimpleNamespace(
            logits=torch.tensor(probs).log().expand(*input_ids.shape, 2).clone())

    base, student = with_hf(tiny_model, fixed([0.5, 0.5])), with_hf(tiny_model, fixed([0.9, 0.1]))
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # KL(base || student); the reverse is 0.368
    assert kl_drift(base, student, PAIRS) == pytest.approx(expected, rel=1e-5)
