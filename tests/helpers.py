"""Independent references the tests share: objectives by plain forward passes, deletion sets; models
with another hf model or a scripted ``generate``."""

from types import SimpleNamespace

import numpy as np
import torch


def with_hf(model, hf, tokenizer=None):
    """``model`` with another hf model (and tokenizer)."""
    return SimpleNamespace(hf=hf, tokenizer=tokenizer or model.tokenizer, device=model.device, name=model.name,
                           dtype=model.dtype)


def recording_model(tokenizer, reply_ids: list[int], seen: list):
    """A model whose ``generate`` records its prompts and kwargs and appends ``reply_ids`` to each
    returned row (``num_return_sequences`` rows per prompt)."""
    def generate(input_ids, attention_mask, **kwargs):
        seen.append((tokenizer.batch_decode(input_ids), kwargs))
        rows = input_ids.repeat_interleave(kwargs.get("num_return_sequences", 1), dim=0)
        return torch.cat([rows, torch.tensor([reply_ids] * len(rows))], dim=1)

    return SimpleNamespace(hf=SimpleNamespace(generate=generate), tokenizer=tokenizer, device=torch.device("cpu"),
                           name="recording", dtype=torch.float32)


def deletion_sets(n: int, seed: int = 0) -> list[list[int]]:
    """Single deletions everywhere, and multi-token states: adjacent, far apart, first, last, all but one."""
    rng = np.random.default_rng(seed)
    sets = [[j] for j in range(n)]
    sets += [[0, 1], [n - 2, n - 1], [0, n - 1], list(range(n - 1)), list(range(1, n))]
    sets += [sorted(rng.choice(n, size=int(rng.integers(2, n)), replace=False).tolist()) for _ in range(8)]
    return sets


def objective_by_hand(model, ids, p, n_post, objective):
    """The objective of ``ids`` from one plain forward pass, written out independently."""
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = model.hf(x).logits[0].log_softmax(-1)
    lp = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
    start = p if objective == "reason-answer" else len(ids) - n_post
    return float(np.mean(lp[start - 1:]))
