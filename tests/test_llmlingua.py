"""LLMLingua's token-level compression: the package's own outputs (llmlingua 0.2.2) reproduced token for token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunelens.pruning.llmlingua import calibrated_keep, llmlingua_keep

REFERENCE = Path(__file__).parent / "data" / "llmlingua-0.2.2" / "reference.jsonl"
CALLS = [json.loads(line) for line in REFERENCE.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("call", CALLS, ids=[f"{c['id']}-r{c['call']['rate']}-w{c['call']['iterative_size']}"
                                             f"{'-prompt' if c['instruction_tokens'] else ''}" for c in CALLS])
def test_llmlingua_keeps_what_the_package_kept(model, call):
    """Every recorded call of the real package, with the embedded model as its small model: the same
    tokens kept, and the same compressed text (the package's output minus its prompt and blank line)."""
    kept = llmlingua_keep(model.hf, call["token_ids"], call["call"]["rate"], call["call"]["iterative_size"],
                          call["instruction_tokens"])
    assert kept == call["kept_indices"]
    text = model.tokenizer.decode([call["token_ids"][j] for j in kept], clean_up_tokenization_spaces=False)
    expected = call["compressed_prompt"]
    if call["prompt"]:
        expected = expected.removeprefix(call["prompt"]).removeprefix("\n\n")
    assert text == expected


def test_the_rate_is_searched_for_the_keep_ratio(model):
    """At the calibrated rate the kept count is the nearest any rate reaches (checked on a grid of rates)."""
    call = next(c for c in CALLS if not c["instruction_tokens"] and len(c["token_ids"]) > 40)
    ids = call["token_ids"]
    want = round(0.8 * len(ids))
    kept = calibrated_keep(model.hf, ids, 0.8, 20)
    grid = {len(llmlingua_keep(model.hf, ids, r / 20, 20)) for r in range(21)}
    assert abs(len(kept) - want) == min(abs(k - want) for k in grid)
