"""How well a student solves problems, how it writes, and how far it moved from its base model.

- **Answers.** ``prunelens.answers``: ``extract_answer`` reads a student's answer (the number on
  its last ``Answer:`` line, else its last number), ``answers_match`` checks it.
- **Accuracy intervals.** Wilson score interval of ``correct`` out of ``n`` (scipy).
- **Paired comparison.** Exact McNemar test: of the problems exactly one of two models solves,
  a two-sided binomial test that each is as likely to be the one (scipy).
- **Paired comparison over seeds.** When two conditions share several seeds, each problem's
  accuracy is averaged over the seeds and the mean paired difference is tested by flipping the
  sign of each problem's difference at random (a permutation test, two-sided: exact for up to 13
  problems, whose 2^13 sign patterns fit in 9,999 resamples, else 9,999 seeded resamples). It
  treats seeds as repeated measures of one problem, which a McNemar test on pooled (problem,
  seed) pairs would count as independent.
- **Hedging.** Occurrences of the phrases of ``HEDGES`` per 100 generated tokens. The lexicon
  holds hedges of uncertainty (``maybe``, ``perhaps``, ``i think``, ``it seems``, ``might`` ...) and
  self-checks or second thoughts (``wait``, ``hmm``, ``let me check``, ``verify``, ``actually``,
  ``alternatively`` ...). A phrase counts as whole words, case-insensitively (``waiter`` holds no
  ``wait``), whitespace inside it may be any run of spaces or newlines, and overlapping phrases
  count once (``let me verify`` is one hedge, not two).
- **Drift.** Mean per-token KL(base || student) of next-token distributions, teacher-forced on
  held-out (question, reply) pairs laid out as in training (chat template of the question, the
  reply, the end-of-turn text), over the reply's tokens only.

Generation: ``prunelens.generation.sampler.generate``, greedy, in a prompt style of ``STYLES``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ..data import Example
from ..layout import render

HEDGES: tuple[str, ...] = (
    # uncertainty
    "maybe", "perhaps", "probably", "possibly", "i think", "i believe", "i guess", "not sure",
    "it seems", "seems", "might",
    # self-checks and second thoughts
    "wait", "hmm", "let me check", "let me verify", "let me double-check", "let's check", "let's verify",
    "double-check", "double check", "to verify", "verify", "check:", "actually", "alternatively",
)
_HEDGE = re.compile(
    r"(?<!\w)(?:" + "|".join(re.escape(h).replace(r"\ ", r"\s+") for h in sorted(HEDGES, key=len, reverse=True))
    + r")(?!\w)", re.IGNORECASE)


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the accuracy ``correct / n``; (nan, nan) when ``n`` is 0."""
    if n == 0:
        return math.nan, math.nan
    from scipy.stats import binomtest

    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """Exact two-sided McNemar test of paired correctness ``a`` and ``b`` (same problems, same order).

    Returns ``{"n", "a_only", "b_only", "p_value"}``; ``p_value`` is 1.0 without discordant pairs.
    """
    if len(a) != len(b):
        raise ValueError(f"paired results differ in length: {len(a)} and {len(b)}")
    a_only = sum(bool(x) and not bool(y) for x, y in zip(a, b))
    b_only = sum(bool(y) and not bool(x) for x, y in zip(a, b))
    if a_only + b_only == 0:
        return {"n": len(a), "a_only": 0, "b_only": 0, "p_value": 1.0}
    from scipy.stats import binomtest

    return {"n": len(a), "a_only": a_only, "b_only": b_only,
            "p_value": float(binomtest(a_only, a_only + b_only, 0.5).pvalue)}


def paired_permutation(a: Sequence[float], b: Sequence[float], n_resamples: int = 9999, seed: int = 0) -> dict:
    """Two-sided sign-flip test that the mean of ``a - b`` (paired per problem) is 0.

    Returns ``{"n", "difference", "p_value"}``; ``p_value`` is 1.0 when every difference is 0.
    """
    if len(a) != len(b):
        raise ValueError(f"paired results differ in length: {len(a)} and {len(b)}")
    import numpy as np
    from scipy.stats import permutation_test

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    difference = float((x - y).mean()) if len(x) else math.nan
    if not np.any(x != y):
        return {"n": len(x), "difference": difference, "p_value": 1.0}
    test = permutation_test((x, y), lambda u, v, axis: (u - v).mean(axis=axis), permutation_type="samples",
                            vectorized=True, n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return {"n": len(x), "difference": difference, "p_value": float(test.pvalue)}


def hedge_count(text: str) -> int:
    """How many phrases of ``HEDGES`` ``text`` holds (whole words, case-insensitive, no overlaps)."""
    return len(_HEDGE.findall(text.replace("\u2019", "'")))


def hedge_rate(texts: Sequence[str], n_tokens: Sequence[int]) -> float:
    """Hedges per 100 tokens over all ``texts`` (``n_tokens`` each); nan when there are no tokens."""
    if len(texts) != len(n_tokens):
        raise ValueError(f"{len(texts)} texts but {len(n_tokens)} token counts")
    total = sum(n_tokens)
    return 100 * sum(hedge_count(t) for t in texts) / total if total else math.nan


def answer_problems(model, problems: Sequence[Example], eval_set: str, style: str, max_new_tokens: int,
                    batch_size: int, show_progress: bool = False):
    """``model``'s greedy reply to each of ``problems``, one row each (the ``generations/`` table):
    example_id, eval_set, text, n_tokens, seconds, predicted, gold, correct."""
    import pandas as pd

    from ..answers import answers_match, extract_answer
    from ..generation.sampler import generate

    outputs = generate(model, [e.question for e in problems], max_new_tokens, batch_size, style,
                       show_progress=show_progress)
    predicted = [extract_answer(o["text"]) for o in outputs]
    return pd.DataFrame({
        "example_id": [e.id for e in problems], "eval_set": eval_set,
        "text": [o["text"] for o in outputs], "n_tokens": [o["n_tokens"] for o in outputs],
        "seconds": [o["seconds"] for o in outputs], "predicted": predicted, "gold": [e.answer for e in problems],
        "correct": [answers_match(p, e.answer) for p, e in zip(predicted, problems)]})


def kl_drift(base, student, examples: Sequence[Example], batch_size: int = 8) -> float:
    """Mean KL(base || student) per reply token (reasoning and answer line) of held-out ``examples``,
    laid out as in training (``layout.render``); nan without any.

    Both models read the ids of ``base.tokenizer``; log-softmax in float32.
    """
    import torch
    import torch.nn.functional as F

    def log_probs(model, ids, mask, targets):
        logits = model.hf(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
        return F.log_softmax(logits[targets.to(model.device)].float(), dim=-1)

    tokenizer = base.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        layouts = [render(e, tokenizer, empty_ok=True) for e in examples[start:start + batch_size]]
        rows = [(lay.ids, len(lay.prompt_ids)) for lay in layouts]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), pad_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        targets = torch.zeros((len(rows), width), dtype=torch.bool)  # positions that predict a reply token
        for i, (row, n_prompt) in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
            targets[i, n_prompt - 1:len(row) - 1] = True
        with torch.inference_mode():
            p = log_probs(base, ids, mask, targets)
            q = log_probs(student, ids, mask, targets).to(p.device)
            total += F.kl_div(q, p, reduction="sum", log_target=True).item()
        count += int(targets.sum())
    return total / count if count else math.nan
