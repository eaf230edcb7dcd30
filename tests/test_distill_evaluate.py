"""Evaluation of distilled students: answers, intervals, paired tests, hedges, generation, drift."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from scipy.stats import norm

from prunelens.data import Example
from prunelens.distill.evaluate import (
    INSTRUCT_PREFIX,
    answers_match,
    extract_answer,
    generate,
    hedge_count,
    hedge_rate,
    kl_drift,
    mcnemar_exact,
    paired_permutation,
    wilson_interval,
)
from prunelens.numbers import broken_number_share

QUESTIONS = ["What is 2 + 3?", "Tom has 4 apples and eats 1. How many are left?", "Name a prime number."]


@pytest.mark.parametrize("text, expected", [
    ("2 + 3 = 5, so she has 5 apples.\nAnswer: 5", "5"),                      # correct answer line
    ("She buys 3 and then 4 more.\nAnswer: 6", "6"),                          # a wrong answer is still read
    ("She buys 3 pens at $2 each, 3 * 2 = 6 dollars.", "6"),                  # no answer line: last number
    ("I cannot tell.", None),                                                 # no number at all
    ("Answer: 3\n4 + 5 = 9\nanswer: 12 apples\nThen 13 more.", "12"),         # the last Answer line wins
    ("Answer: 1 + 2 = 3\nSo 7.", "3"),                                        # the last number on that line
    ("Total: 1,000 + 200\nAnswer: $1,200.00", "1200"),
    ("Answer: -3.50", "-3.5"),
    ("Answer: 0.25", "0.25"),
    ("Answer: 18.", "18"),
    ("Answer: 7.", "7"),
    ("The answer is 18", "18"),                                               # fallback
    ("Answer: unknown\nI counted 4 then 9 eggs.", "9"),                       # no number on the line: fallback
    ("pages 3-5 were read\nAnswer: 2,500", "2500"),
])
def test_extract_answer_reads_hand_written_outputs(text, expected):
    assert extract_answer(text) == expected


def test_answers_match_compares_numbers_by_value():
    assert answers_match("1200.0", "1,200") and answers_match("1200", "1,200")
    assert answers_match(extract_answer("Answer: $18.00."), "18")
    assert not answers_match("1201", "1,200") and not answers_match(None, "18")
    assert not answers_match("18 apples", "18")  # a prediction is one number, not a sentence
    assert answers_match(" yes ", "yes") and not answers_match("no", "yes")  # non-numeric gold: text


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


def _like(model, hf, tokenizer=None):
    """``model`` with another hf model (and tokenizer)."""
    return SimpleNamespace(hf=hf, tokenizer=tokenizer or model.tokenizer, device=model.device)


def _recording_model(tokenizer, reply_ids: list[int], seen: list):
    """A model whose ``generate`` records its prompts and kwargs and appends ``reply_ids`` to each."""
    def generate(input_ids, attention_mask, **kwargs):
        seen.append((tokenizer.batch_decode(input_ids), kwargs))
        return torch.cat([input_ids, torch.tensor([reply_ids] * len(input_ids))], dim=1)

    return SimpleNamespace(hf=SimpleNamespace(generate=generate), tokenizer=tokenizer, device=torch.device("cpu"))


def _untimed(outputs: list[dict], batch_size: int = 16) -> list[dict]:
    """``outputs`` without their ``seconds``, which must be one share of its batch's time per batch."""
    seconds = [o["seconds"] for o in outputs]
    assert all(t > 0 for t in seconds)
    assert all(len(set(seconds[i:i + batch_size])) == 1 for i in range(0, len(seconds), batch_size))
    return [{k: v for k, v in o.items() if k != "seconds"} for o in outputs]


def test_generate_prompts_stops_and_counts(tiny_model):
    tok = tiny_model.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    answer = tok("Answer: 42", add_special_tokens=False)["input_ids"]
    seen = []
    model = _recording_model(tok, answer + [end, end, end], seen)
    q = QUESTIONS[0]
    chat = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
    instruct = tok.apply_chat_template([{"role": "user", "content": INSTRUCT_PREFIX + q}], tokenize=False,
                                       add_generation_prompt=True)
    for style, prompt in [("chat", chat), ("instruct", instruct), ("plain", f"Question: {q}\nReasoning: ")]:
        out = _untimed(generate(model, [q], max_new_tokens=9, style=style, show_progress=False))
        assert out == [{"text": "Answer: 42", "n_tokens": len(answer) + 1}]
        assert seen[-1][0] == [prompt]
        kwargs = seen[-1][1]
        assert kwargs["do_sample"] is False and kwargs["max_new_tokens"] == 9 and end in kwargs["eos_token_id"]
    no_stop = _recording_model(tok, answer, [])
    assert _untimed(generate(no_stop, [q], show_progress=False)) == [{"text": "Answer: 42", "n_tokens": len(answer)}]


def test_generate_stops_at_the_end_of_turn_token_as_well_as_eos(tiny_model):
    tok = copy.deepcopy(tiny_model.tokenizer)
    tok.eos_token = "<|endoftext|>"  # SmolLM2's eos is its end of turn: part them to see both stop
    answer = tok("Answer: 42", add_special_tokens=False)["input_ids"]
    for stop in ("<|endoftext|>", "<|im_end|>"):
        model = _recording_model(tok, answer + [tok.convert_tokens_to_ids(stop)] + answer, [])
        assert _untimed(generate(model, [QUESTIONS[0]], show_progress=False)) == [
            {"text": "Answer: 42", "n_tokens": len(answer) + 1}]


def test_generate_on_tiny_model_batches_with_left_padding(tiny_model):
    out = _untimed(generate(tiny_model, QUESTIONS, max_new_tokens=5, batch_size=2, show_progress=False), 2)
    assert len(out) == 3 and all(set(o) == {"text", "n_tokens"} and 1 <= o["n_tokens"] <= 5 for o in out)
    alone = _untimed(generate(tiny_model, QUESTIONS[:1], max_new_tokens=5, show_progress=False))
    batched = _untimed(generate(tiny_model, [QUESTIONS[0], QUESTIONS[1]], max_new_tokens=5, batch_size=2,
                                show_progress=False), 2)
    assert batched[0] == alone[0] == out[0]
    assert tiny_model.tokenizer.padding_side == "right"  # restored
    with pytest.raises(ValueError, match="chat, instruct, plain"):
        generate(tiny_model, QUESTIONS, style="socratic", show_progress=False)



def test_generate_pads_with_eos_when_the_tokenizer_has_no_pad_token(tiny_model):
    tok = copy.deepcopy(tiny_model.tokenizer)
    tok.pad_token = None
    model = _like(tiny_model, tiny_model.hf, tok)
    out = _untimed(generate(model, QUESTIONS[:2], max_new_tokens=3, batch_size=2, show_progress=False), 2)
    assert out == _untimed(generate(tiny_model, QUESTIONS[:2], max_new_tokens=3, batch_size=2, show_progress=False), 2)
    assert tok.pad_token is None and tok.padding_side == "right"  # restored


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
    drift = kl_drift(tiny_model, _like(tiny_model, hf), PAIRS)
    assert drift > 1e-4
    assert kl_drift(tiny_model, _like(tiny_model, hf), PAIRS, batch_size=1) == pytest.approx(drift, rel=1e-4)


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

    assert abs(kl_drift(tiny_model, _like(tiny_model, _Changed(tiny_model.hf, outside_reply)), PAIRS)) < 1e-6
    assert kl_drift(tiny_model, _like(tiny_model, _Changed(tiny_model.hf, first_reply_token)), PAIRS) > 1e-3


def test_kl_drift_is_base_to_student_by_hand(tiny_model):
    def fixed(probs):  # logits that give ``probs`` over a 2-token vocabulary at every position
        return lambda input_ids, attention_mask: SimpleNamespace(
            logits=torch.tensor(probs).log().expand(*input_ids.shape, 2).clone())

    base, student = _like(tiny_model, fixed([0.5, 0.5])), _like(tiny_model, fixed([0.9, 0.1]))
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)  # KL(base || student); the reverse is 0.368
    assert kl_drift(base, student, PAIRS) == pytest.approx(expected, rel=1e-5)
