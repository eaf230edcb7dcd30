"""The model-family matrix: tiny random models of every common decoder family (``families.py``), each
with its real chat template, exact against the naive algorithm; sliding windows shorter than the
sequence; thinking-model layouts; the attention each family gets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from families import FAMILIES, WINDOWED, build

from prunelens import load_model
from prunelens.cli import main
from prunelens.data import Example
from prunelens.errors import LayoutError, SettingsError
from prunelens.layout import Layout, render, render_text, template_parts
from prunelens.pruning import NaiveReference, prune, prune_examples

pytestmark = pytest.mark.families
WINDOW = 8  # shorter than every laid-out chain here (prompts alone are 60+ tokens)
VARIANTS = [(f, None) for f in FAMILIES] + [(f, WINDOW) for f in WINDOWED]
IDS = [f if w is None else f"{f}-window{w}" for f, w in VARIANTS]


@pytest.fixture(scope="module")
def family_models(tmp_path_factory):
    """Every variant, built and loaded once (a few seconds in all)."""
    root = tmp_path_factory.mktemp("families")
    return {(f, w): load_model(str(build(f, root / f"{f}-{w}", window=w)), "cpu") for f, w in VARIANTS}


@pytest.fixture(scope="module")
def chain(short_chains):
    return short_chains[3]  # 12 reasoning tokens


def _short(layout: Layout, n: int = 8) -> Layout:
    """The layout's first ``n`` reasoning tokens (the naive algorithm costs n^2 full passes)."""
    return Layout(layout.prompt_ids, layout.reasoning_ids[:n], layout.post_ids, layout.spans[:n], layout.reasoning)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
@pytest.mark.parametrize("objective", ["reason-answer", "answer"])
def test_exact_greedy_equals_the_naive_algorithm(family_models, chain, variant, objective):
    model = family_models[variant]
    layout = _short(render(chain, model.tokenizer))
    result = prune(model, layout, objective=objective)
    order, trajectory = NaiveReference(model, objective).run(layout)
    assert result.order == order
    assert np.abs(np.array(result.trajectory) - np.array(trajectory)).max() < 2e-5


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_every_method_scores_the_states_it_visits_exactly(family_models, chain, variant):
    """greedy-words against its naive algorithm; greedy-fast, surprisal and h2o: each state their
    order visits scored as a full pass scores it (windows included)."""
    model = family_models[variant]
    layout = _short(render(chain, model.tokenizer))
    naive = NaiveReference(model)
    words = prune(model, layout, method="greedy-words")
    assert words.order == naive.run(layout, units=layout.words)[0]
    for method in ("greedy-fast", "surprisal", "h2o"):
        result = prune(model, layout, method=method, trajectory="full")
        expected = naive.trajectory(layout, result.order)
        assert np.abs(np.array(result.trajectory) - np.array(expected)).max() < 2e-5, method


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_llmlingua_compresses_and_features_equal_eager_attention(family_models, chain, variant, tmp_path):
    """llmlingua runs to its keep ratio; the hooked features equal plain transformers' eager
    attention (``output_attentions``), windows included."""
    from transformers import AutoModelForCausalLM

    from prunelens.hooked import sequence_features
    from prunelens.schema import chains_at

    model = family_models[variant]
    prune_examples(model, [chain], tmp_path / "lingua", method="llmlingua", keep_ratio=0.6, segment_tokens=4,
                   show_progress=False)
    assert chains_at(tmp_path / "lingua", 0.6).reasoning.iloc[0]
    layout = render(chain, model.tokenizer)
    p, n = len(layout.prompt_ids), len(layout.reasoning_ids)
    features = sequence_features(model, layout.ids, p, n, families=("attn",))
    plain = AutoModelForCausalLM.from_pretrained(model.path, attn_implementation="eager").eval()
    with torch.no_grad():
        attentions = plain(torch.tensor([layout.ids]), output_attentions=True).attentions
    expected = torch.stack([a[0, :, p + n:, p:p + n].mean(1).mean(0) for a in attentions]).mean(0)
    assert np.allclose(features["attn_answer.mean"], expected.numpy(), atol=1e-6)


def test_each_family_gets_the_attention_it_has(family_models, tmp_path, capsys):
    """sdpa where the family has it, eager for Gemma-2 (soft-capping), both recorded; sdpa asked of
    Gemma-2 is one line, from the command line too, before any weight loads."""
    attention = {f: load_model(str(m.path), "cpu", weights=False).hf.config._attn_implementation
                 for (f, w), m in family_models.items() if w is None}  # fresh: a hooked model scores eagerly
    assert attention["gemma2"] == "eager" and all(v == "sdpa" for f, v in attention.items() if f != "gemma2")
    gemma = family_models["gemma2", None]
    with pytest.raises(SettingsError, match="no sdpa attention"):
        load_model(str(gemma.path), "cpu", attention="sdpa")
    assert main(["info", "--model", str(gemma.path), "--device", "cpu"]) == 0
    assert "attention  eager" in capsys.readouterr().out
    assert main(["info", "--model", str(gemma.path), "--attention", "sdpa"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert load_model(str(gemma.path), "cpu", attention="eager").hf.config._attn_implementation == "eager"


def test_thinking_templates_put_the_reasoning_in_the_think_block(family_models):
    """Qwen3 renders the chain exactly as its template renders an assistant turn with that reasoning;
    DeepSeek-R1-Distill, whose template drops reasoning from turns, continues its own generation
    prompt (which opens the block) and closes it before the answer; others stay plain."""
    example = Example("x", "What is 2 + 3?", "2 + 3 = 5", "5")
    qwen3 = family_models["qwen3", None].tokenizer
    reply = {"role": "assistant", "content": "Answer: 5", "reasoning_content": example.reasoning}
    assert render_text(example, qwen3) == qwen3.apply_chat_template(
        [{"role": "user", "content": example.question}, reply], tokenize=False)
    r1 = family_models["deepseek-r1-distill", None].tokenizer
    prompt = r1.apply_chat_template([{"role": "user", "content": example.question}], tokenize=False,
                                    add_generation_prompt=True)
    assert prompt.endswith("<think>\n")
    assert render_text(example, r1) == prompt + "2 + 3 = 5\n</think>\n\nAnswer: 5<｜end▁of▁sentence｜>"  # as the template ends a turn
    layouts = {f: template_parts(m.tokenizer, "Q").layout for (f, w), m in family_models.items() if w is None}
    assert {f for f, kind in layouts.items() if kind == "think"} == {"qwen3", "deepseek-r1-distill"}
    plain = render_text(example, qwen3, layout="plain")
    assert "Answer: 5" in plain and plain.index("2 + 3 = 5") > plain.index("</think>")  # the reply after the block
    with pytest.raises(SettingsError, match="opens no think block"):
        template_parts(family_models["llama3", None].tokenizer, "Q", layout="think")


def test_a_prompt_that_does_not_start_the_reply_names_the_example_and_the_fix(family_models):
    r1 = family_models["deepseek-r1-distill", None].tokenizer
    with pytest.raises(LayoutError) as err:
        render(Example("gsm8k-7", "What is 2 + 3?", "2 + 3 = 5", "5"), r1, layout="plain")
    message = str(err.value)
    assert "example gsm8k-7" in message and "differ at character" in message and "--layout think" in message
    assert "\n" not in message


@pytest.mark.slow
def test_a_thinking_model_run_goes_through_every_stage_from_the_command_line(family_models, short_chains, tmp_path):
    """prune with an R1-style model, then every later stage without --model (the run's own); the run
    records the think layout and the attention."""
    model = family_models["deepseek-r1-distill", None]
    data = tmp_path / "chains.jsonl"
    data.write_text("".join(json.dumps({"id": e.id, "question": e.question, "reasoning": e.reasoning,
                                        "answer": e.answer}) + "\n" for e in short_chains[:3]))
    run = tmp_path / "run"
    assert main(["prune", "--model", str(model.path), "--data", f"jsonl:{data}", "--method", "greedy",
                 "--out", str(run)]) == 0
    record = json.loads((run / "prune.json").read_text())
    assert (record["layout"], record["attention"]) == ("think", "sdpa")
    for command in (["features"], ["annotate"], ["analyze", "--linear-only"], ["figures"], ["view"]):
        assert main([command[0], str(run), *command[1:]]) == 0, command
    assert (run / "figures" / "category_survival.png").exists() and (run / "viewer.html").exists()
