"""LLMLingua's token-level compression: the package's own outputs (llmlingua 0.2.2) reproduced token for token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunelens.layout import render
from prunelens.pruning import prune, prune_examples
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


@pytest.mark.parametrize("keep_ratio", [0.0, 0.3])
def test_llmlingua_segments_keeps_what_segment_wise_self_information_keeps(tiny_model, short_chains, keep_ratio):
    """By hand with plain transformers: segment by segment, self-information given the prompt and the
    kept tokens of earlier segments; the lowest of each segment go. The first deletions of the order
    are exactly those tokens."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model.path, attn_implementation="eager").eval()
    layout = render(short_chains[9], tiny_model.tokenizer)
    reasoning, n, size = layout.reasoning_ids, len(layout.reasoning_ids), 5
    target = keep_ratio or 0.5
    context, dropped = list(layout.prompt_ids), []
    for start in range(0, n, size):
        segment = list(range(start, min(start + size, n)))
        ids = context + [reasoning[j] for j in segment]
        with torch.no_grad():
            logp = torch.log_softmax(plain(torch.tensor([ids])).logits[0].double(), -1)
        info = {j: -float(logp[len(context) + k - 1, reasoning[j]]) for k, j in enumerate(segment)}
        going = sorted(segment, key=lambda j: (info[j], j))[: len(segment) - round(target * len(segment))]
        dropped += going
        context += [reasoning[j] for j in segment if j not in going]
    order = prune(tiny_model, layout, method="llmlingua-segments", segment_tokens=size, keep_ratio=keep_ratio).order
    assert set(order[: len(dropped)]) == set(dropped)
    if keep_ratio == 0:
        assert sorted(order) == list(range(n))


def test_llmlingua_run_holds_the_package_rules_chain_at_its_keep_ratio(tiny_model, short_chains, tmp_path):
    """A text run: per chain the kept tokens of llmlingua 0.2.2's rules at the calibrated rate, decoded,
    scored exactly like any chain; a run without a keep ratio is refused before any work."""
    from prunelens.pruning.llmlingua import calibrated_keep
    from prunelens.schema import chains_at, read_table

    chains = short_chains[20:23]
    run = tmp_path / "lingua"
    prune_examples(tiny_model, chains, run, method="llmlingua", keep_ratio=0.6, segment_tokens=8, show_progress=False)
    table = chains_at(run, 0.6).set_index("example_id")
    texts = read_table(run, "texts").set_index("example_id")
    for e in chains:
        ids = tiny_model.tokenizer(e.reasoning, add_special_tokens=False)["input_ids"]
        kept = calibrated_keep(tiny_model.hf, ids, 0.6, 8)
        assert table.loc[e.id, "reasoning"] == tiny_model.tokenizer.decode([ids[j] for j in kept]).strip()
        assert abs(len(kept) - round(0.6 * len(ids))) <= 3 and 0 < texts.loc[e.id, "achieved_ratio"] < 1
    with pytest.raises(ValueError, match="give --keep-ratio"):
        prune_examples(tiny_model, chains, tmp_path / "none", method="llmlingua", show_progress=False)
