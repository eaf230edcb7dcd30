"""Writing replies: prompts in each style, stop tokens, batching with left padding, seeded sampling."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import recording_model, with_hf

from prunelens.generation.sampler import INSTRUCT_PREFIX, generate, prompt_for

QUESTIONS = ["What is 2 + 3?", "Tom has 4 apples and eats 1. How many are left?", "Name a prime number."]


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
    model = recording_model(tok, answer + [end, end, end], seen)
    q = QUESTIONS[0]
    chat = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
    instruct = tok.apply_chat_template([{"role": "user", "content": INSTRUCT_PREFIX + q}], tokenize=False,
                                       add_generation_prompt=True)
    for style, prompt in [("chat", chat), ("instruct", instruct), ("plain", f"Question: {q}\nReasoning: ")]:
        out = _untimed(generate(model, [q], max_new_tokens=9, style=style, show_progress=False))
        assert out == [{"text": "Answer: 42", "n_tokens": len(answer) + 1, "stopped": True}]
        assert seen[-1][0] == [prompt]
        kwargs = seen[-1][1]
        assert kwargs["do_sample"] is False and kwargs["max_new_tokens"] == 9 and end in kwargs["eos_token_id"]
    no_stop = recording_model(tok, answer, [])
    assert _untimed(generate(no_stop, [q], show_progress=False)) == [
        {"text": "Answer: 42", "n_tokens": len(answer), "stopped": False}]


def test_generate_stops_at_the_end_of_turn_token_as_well_as_eos(tiny_model):
    tok = copy.deepcopy(tiny_model.tokenizer)
    tok.eos_token = "<|endoftext|>"  # SmolLM2's eos is its end of turn: part them to see both stop
    answer = tok("Answer: 42", add_special_tokens=False)["input_ids"]
    for stop in ("<|endoftext|>", "<|im_end|>"):
        model = recording_model(tok, answer + [tok.convert_tokens_to_ids(stop)] + answer, [])
        assert _untimed(generate(model, [QUESTIONS[0]], show_progress=False)) == [
            {"text": "Answer: 42", "n_tokens": len(answer) + 1, "stopped": True}]


def test_generate_on_tiny_model_batches_with_left_padding(tiny_model):
    out = _untimed(generate(tiny_model, QUESTIONS, max_new_tokens=5, batch_size=2, show_progress=False), 2)
    assert len(out) == 3 and all(set(o) == {"text", "n_tokens", "stopped"} and 1 <= o["n_tokens"] <= 5 for o in out)
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
    model = with_hf(tiny_model, tiny_model.hf, tok)
    out = _untimed(generate(model, QUESTIONS[:2], max_new_tokens=3, batch_size=2, show_progress=False), 2)
    assert out == _untimed(generate(tiny_model, QUESTIONS[:2], max_new_tokens=3, batch_size=2, show_progress=False), 2)
    assert tok.pad_token is None and tok.padding_side == "right"  # restored


def test_sampling_is_pure_temperature_and_draws_samples_per_prompt(tiny_model):
    tok = tiny_model.tokenizer
    seen = []
    model = recording_model(tok, tok("Answer: 4", add_special_tokens=False)["input_ids"], seen)
    out = generate(model, QUESTIONS[:2], max_new_tokens=4, samples=3, temperature=0.7, seed=1, show_progress=False)
    assert len(out) == 6 and len(seen) == 1
    kwargs = seen[0][1]
    # transformers would apply the model's own top-k (50 by default) unless told otherwise
    assert kwargs["do_sample"] is True and kwargs["temperature"] == 0.7 and kwargs["top_k"] == 0
    assert kwargs["top_p"] == 1.0 and kwargs["num_return_sequences"] == 3
    with pytest.raises(ValueError, match="all be the same"):
        generate(model, QUESTIONS[:1], samples=2, show_progress=False)


def test_sampling_is_seeded_and_samples_differ(tiny_model):
    def draw(seed):
        return [o["text"] for o in generate(tiny_model, QUESTIONS[:1], max_new_tokens=8, samples=4, temperature=1.0,
                                            seed=seed, show_progress=False)]

    first = draw(3)
    assert draw(3) == first and draw(4) != first
    assert len(set(first)) > 1  # a random 2-layer model at temperature 1: four samples are not one reply
    torch.manual_seed(0)


def test_prompt_is_the_one_every_stage_lays_a_chain_out_in(tiny_model):
    from prunelens.layout import template_parts

    tok = tiny_model.tokenizer
    q = QUESTIONS[1]
    assert prompt_for(tok, q, "chat") == template_parts(tok, q).prompt
    assert prompt_for(tok, q, "instruct") == template_parts(tok, INSTRUCT_PREFIX + q).prompt
    assert prompt_for(tok, q, "plain") == f"Question: {q}\nReasoning: "
