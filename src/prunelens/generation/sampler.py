"""Write replies with a model: batched transformers generation with the key/value cache, or vLLM.

Prompt styles (``STYLES``): ``chat`` (the chat template around the question, as every stage lays a
chain out: a thinking model's prompt opens its think block), ``instruct`` (the same around an
instruction to end with an ``Answer:`` line, then the question) and ``plain`` (no template).

Sampling is pure temperature sampling: no top-k, no top-p (transformers' generation config would
otherwise apply a model's own top-k of 50, vLLM none), so both backends draw from the same
distribution. Greedy (temperature 0) is batched with left padding; samples of one prompt share it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..errors import SettingsError
from ..layout import template_parts

STYLES = ("chat", "instruct", "plain")
INSTRUCT_PREFIX = "Solve the problem step by step and end with a line 'Answer: <number>'.\n\n"
BACKENDS = ("transformers", "vllm")


def asked(question: str, style: str) -> str:
    """The user message of ``question`` in ``style``: the question, after the instruction for ``instruct``."""
    return INSTRUCT_PREFIX + question if style == "instruct" else question


def prompt_for(tokenizer, question: str, style: str, layout: str = "auto") -> str:
    """The text a reply to ``question`` continues, in ``style`` (``STYLES``) and ``layout``."""
    if style not in STYLES:
        raise SettingsError(f"unknown prompt style {style!r}: use one of {', '.join(STYLES)}")
    if style == "plain":
        return f"Question: {question}\nReasoning: "
    return template_parts(tokenizer, asked(question, style), layout).prompt


def stop_ids(tokenizer) -> list[int]:
    """The eos id, and the template's end-of-turn token: the first token after a reply, if special."""
    first = tokenizer(template_parts(tokenizer, "").end, add_special_tokens=False)["input_ids"][:1]
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    return sorted({i for i in [tokenizer.eos_token_id, *first] if i is not None and i in special})


def _reply(tokenizer, row: list[int], stops: list[int], seconds: float, stopped: bool | None = None) -> dict:
    """One generated row: its text without special tokens, the tokens up to and including the first
    stop token (all of them when none came), whether it stopped (else it ran out of tokens; vLLM
    says which), its share of the wall time."""
    n = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
    return {"text": tokenizer.decode(row[:n], skip_special_tokens=True), "n_tokens": n,
            "stopped": stopped if stopped is not None else n > 0 and row[n - 1] in stops, "seconds": seconds}


def generate(model, questions: Sequence[str], max_new_tokens: int = 256, batch_size: int = 16,
             style: str = "chat", show_progress: bool = True, *, samples: int = 1, temperature: float = 0.0,
             seed: int | None = None, layout: str = "auto") -> list[dict]:
    """Replies to ``questions``: ``samples`` of each (consecutive, in order), ``{"text", "n_tokens",
    "stopped", "seconds"}`` each (see ``_reply``; ``seconds``: the reply's share of its batch).

    Greedy at ``temperature`` 0, else sampled (see the module docstring) after seeding torch with
    ``seed``; ``batch_size`` prompts go side by side, each with its ``samples``.
    """
    import torch

    from ..ops import progress_bar

    if temperature < 0 or samples < 1:
        raise SettingsError(f"temperature {temperature} and samples {samples}: give temperature >= 0, samples >= 1")
    if samples > 1 and temperature == 0:
        raise SettingsError(f"{samples} greedy samples would all be the same: give a temperature above 0")
    tokenizer = model.tokenizer
    prompts = [prompt_for(tokenizer, q, style, layout) for q in questions]
    stops = stop_ids(tokenizer)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0,
                "num_return_sequences": samples} if temperature > 0 else {"do_sample": False}
    if seed is not None:
        torch.manual_seed(seed)
    side, pad = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"
    if pad is None:
        tokenizer.pad_token = tokenizer.eos_token
    outputs = []
    try:
        for start in progress_bar(range(0, len(prompts), batch_size), desc="generate", unit="batch",
                                  disable=not show_progress):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            started = time.perf_counter()
            with torch.inference_mode():
                ids = model.hf.generate(**batch, max_new_tokens=max_new_tokens, use_cache=True, eos_token_id=stops,
                                        pad_token_id=tokenizer.pad_token_id, **sampling)
            share = (time.perf_counter() - started) / len(ids)
            outputs += [_reply(tokenizer, row, stops, share) for row in ids[:, batch["input_ids"].shape[1]:].tolist()]
    finally:
        tokenizer.padding_side, tokenizer.pad_token = side, pad
    return outputs


def check_backend(backend: str, device: str | None = None) -> None:
    """A one-line error for an unknown backend, or vLLM where it is missing or there is no GPU."""
    if backend not in BACKENDS:
        raise SettingsError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend != "vllm":
        return
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise SettingsError("--backend vllm needs vLLM (pip install vllm, on a machine with a GPU): "
                            "or leave --backend out for transformers")
    import torch

    if not torch.cuda.is_available() or device == "cpu":
        raise SettingsError("--backend vllm needs a CUDA GPU, and there is none here: leave --backend out for "
                            "transformers")


class VllmSampler:
    """The vLLM backend: the model loaded by vLLM from its path (once), sampled as ``generate`` does."""

    def __init__(self, model) -> None:
        self.model = model
        self._llm = None

    def __call__(self, questions: Sequence[str], max_new_tokens: int, *, samples: int, temperature: float,
                 seed: int, style: str, layout: str = "auto") -> list[dict]:
        from vllm import LLM, SamplingParams

        from ..models import resolve_model_path

        if self._llm is None:
            self._llm = LLM(model=str(resolve_model_path(self.model.name)), dtype=str(self.model.dtype).split(".")[-1],
                            seed=seed)
        tokenizer = self.model.tokenizer
        stops = stop_ids(tokenizer)
        params = SamplingParams(n=samples, temperature=temperature, top_k=-1, top_p=1.0, seed=seed,
                                max_tokens=max_new_tokens, stop_token_ids=stops, skip_special_tokens=True)
        prompts = [{"prompt_token_ids": tokenizer(prompt_for(tokenizer, q, style, layout),
                                                  add_special_tokens=False)["input_ids"]} for q in questions]
        started = time.perf_counter()
        results = self._llm.generate(prompts, params, use_tqdm=False)
        share = (time.perf_counter() - started) / max(1, samples * len(questions))
        return [_reply(tokenizer, list(o.token_ids), stops, share, o.finish_reason == "stop")
                for r in results for o in r.outputs]
