"""The teacher's own chains: rejection sampling, the files it writes, resuming, bad input, and the
whole pipeline from the command line on chains the embedded model wrote."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from helpers import with_hf

from prunelens.cli import main
from prunelens.data import Example, load_examples
from prunelens.errors import DataError, RunError, SettingsError
from prunelens.generation import GenerateConfig, generate_chains, generate_into
from prunelens.generation.sampler import INSTRUCT_PREFIX, prompt_for
from prunelens.layout import render

EASY = Path(__file__).parent / "data" / "easy-problems.jsonl"


def scripted(model, replies: list[str], seen: list | None = None):
    """``model`` whose ``generate`` hands out ``replies`` in order (then fails: nothing more may be drawn)."""
    tok, queue = model.tokenizer, list(replies)
    end = tok.convert_tokens_to_ids("<|im_end|>")

    def generate(input_ids, attention_mask, **kwargs):
        k = kwargs.get("num_return_sequences", 1) * len(input_ids)
        assert len(queue) >= k, "drew more samples than the test expects"
        texts = [queue.pop(0) for _ in range(k)]
        if seen is not None:
            seen.append((tok.batch_decode(input_ids), kwargs, texts))
        rows = [tok(t, add_special_tokens=False)["input_ids"] + [end] for t in texts]
        width = max(map(len, rows))
        rows = [r + [end] * (width - len(r)) for r in rows]
        prompt = input_ids.repeat_interleave(k // len(input_ids), dim=0)
        return torch.cat([prompt, torch.tensor(rows)], dim=1)

    return with_hf(model, SimpleNamespace(generate=generate))


PROBLEMS = [Example("a", "What is 2 + 3?", "", "5"), Example("b", "What is 3 + 4?", "", "7")]


def test_the_first_correct_sample_is_kept_and_every_sample_recorded(tiny_model, tmp_path):
    replies = ["2 + 3 makes", "2 + 3 = 6.\nAnswer: 6",  # round 1 of a: no marker, wrong
               "2 + 3 = 5.\nAnswer: 5", "Five. The answer is 5.",  # round 2: both correct, the first is kept
               "3 + 4 = 8.\nAnswer: 8", "3 + 4 = 12.\nAnswer: 12", "I do not know", "3 + 4 = 1.\nAnswer: 1"]  # b: none
    seen: list = []
    config = GenerateConfig(samples=4, round_size=2)
    summary = generate_into(scripted(tiny_model, replies, seen), PROBLEMS, tmp_path, config, show_progress=False)
    assert summary["problems"] == 2 and summary["solved"] == 1 and summary["samples"] == 8
    assert [s[1]["num_return_sequences"] for s in seen] == [2, 2, 2, 2]  # a stops after its second round
    assert all(s[1]["temperature"] == 0.7 and s[1]["top_k"] == 0 for s in seen)
    assert seen[0][0] == [prompt_for(tiny_model.tokenizer, "What is 2 + 3?", "instruct")]
    attempts = pd.read_parquet(tmp_path / "attempts.parquet")
    assert list(attempts.verdict) == ["unsplit", "wrong", "correct", "correct", "wrong", "wrong", "unsplit", "wrong"]
    assert list(attempts.kept) == [False, False, True] + [False] * 5
    assert list(attempts["sample"]) == [0, 1, 2, 3, 0, 1, 2, 3]
    assert list(attempts.rule.fillna("none")) == ["none", "answer-line", "answer-line", "answer-is", "answer-line", "answer-line",
                                   "none", "answer-line"]
    problems = pd.read_parquet(tmp_path / "problems.parquet").set_index("example_id")
    assert problems.loc["a", "attempts"] == 3 and problems.loc["a", "samples"] == 4 and problems.loc["a", "solved"]
    assert not problems.loc["b", "solved"] and pd.isna(problems.loc["b", "attempts"])  # recorded, not dropped
    chains = [json.loads(line) for line in (tmp_path / "chains.jsonl").read_text().splitlines()]
    assert chains == [{"id": "a", "question": INSTRUCT_PREFIX + "What is 2 + 3?", "reasoning": "2 + 3 = 5.",
                       "answer": "5", "teacher": tiny_model.name, "sample": 2, "attempts": 3, "split": "answer-line",
                       "gold": "5", "source_question": "What is 2 + 3?"}]
    assert load_examples(f"jsonl:{tmp_path}/chains.jsonl") == [
        Example("a", INSTRUCT_PREFIX + "What is 2 + 3?", "2 + 3 = 5.", "5")]


def test_a_resume_draws_nothing_done_and_refuses_other_settings(tiny_model, tmp_path):
    config = GenerateConfig(samples=2, round_size=2)
    generate_into(scripted(tiny_model, ["2 + 3 = 5.\nAnswer: 5", "x"]), PROBLEMS[:1], tmp_path, config,
                  show_progress=False)
    again = generate_into(scripted(tiny_model, ["3 + 4 = 7.\nAnswer: 7", "y"]), PROBLEMS, tmp_path, config,
                          show_progress=False)  # only b is sampled: a's replies would fail the script
    assert again["resumed"] == 1 and again["done"] == 1 and again["solved"] == 2
    assert [c["id"] for c in map(json.loads, (tmp_path / "chains.jsonl").read_text().splitlines())] == ["a", "b"]
    with pytest.raises(RunError, match="temperature=0.7 \\(now 1.0\\)"):
        generate_into(scripted(tiny_model, []), PROBLEMS, tmp_path, GenerateConfig(samples=2, round_size=2,
                                                                                     temperature=1.0),
                      show_progress=False)


def test_no_correct_sample_is_a_count_not_a_crash(tiny_model, tmp_path, capsys, monkeypatch):
    import prunelens.models

    model = scripted(tiny_model, ["no idea"] * 2)
    monkeypatch.setattr(prunelens.models, "load_model", lambda *a, **k: model)
    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "a", "question": "What is 2 + 3?", "answer": "5"}) + "\n")
    assert main(["generate", "--model", str(tiny_model.name), "--data", f"jsonl:{tmp_path}/p.jsonl", "--samples", "2",
                 "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "0 of 1 solved within 2 samples (pass@2 0.000), 1 without a correct sample" in out
    assert "no correct chain" in err and (tmp_path / "out" / "chains.jsonl").read_text() == ""


def test_a_problems_samples_do_not_depend_on_the_others(tiny_model, tmp_path):
    """Each round is seeded from the problem's id: a problem alone draws what it draws beside others."""
    config = GenerateConfig(samples=3, round_size=2, max_new_tokens=6, temperature=1.0)
    generate_into(tiny_model, PROBLEMS, tmp_path / "both", config, show_progress=False)
    generate_into(tiny_model, PROBLEMS[1:], tmp_path / "alone", config, show_progress=False)
    both = pd.read_parquet(tmp_path / "both" / "attempts.parquet")
    alone = pd.read_parquet(tmp_path / "alone" / "attempts.parquet")
    columns = ["example_id", "sample", "text", "n_tokens"]
    pd.testing.assert_frame_equal(both[both.example_id == "b"][columns].reset_index(drop=True), alone[columns])
    assert both[both.example_id == "b"].text.nunique() > 1  # sampled, not one reply three times


def test_a_thinking_teachers_chain_is_its_think_block_scored_where_it_wrote_it(tmp_path):
    from families import build

    from prunelens.models import load_model

    teacher = load_model(str(build("qwen3", tmp_path / "qwen3")), device="cpu")
    reply = "Okay, 2 + 3 = 5. Let me check: yes.\n</think>\n\nThe answer is \\boxed{5}."
    seen: list = []
    generate_into(scripted(teacher, [reply], seen), PROBLEMS[:1], tmp_path / "out", GenerateConfig(samples=1),
                  show_progress=False)
    assert seen[0][0][0].rstrip().endswith("<think>")  # the prompt opened the block the reply closes
    chain = load_examples(f"jsonl:{tmp_path}/out/chains.jsonl")[0]
    assert (chain.reasoning, chain.answer) == ("Okay, 2 + 3 = 5. Let me check: yes.", "5")
    assert json.loads((tmp_path / "out" / "chains.jsonl").read_text())["split"] == "think"
    laid = render(chain, teacher.tokenizer)  # what prune scores: the prompt it was written under, then its block
    tok = teacher.tokenizer
    assert tok.decode(laid.prompt_ids) == seen[0][0][0]
    assert tok.decode(laid.prompt_ids + laid.reasoning_ids).endswith("<think>\n" + chain.reasoning)


@pytest.mark.parametrize("settings, message", [
    (dict(backend="llamacpp"), "unknown --backend 'llamacpp': use one of transformers, vllm"),
    (dict(samples=0), "--samples 0 is not a positive number"),
    (dict(temperature=0.0), "would all be the same reply"),
    (dict(style="socratic"), "unknown --style 'socratic'"),
    (dict(layout="deep"), "unknown --layout 'deep'"),
])
def test_settings_are_one_line_errors(settings, message):
    with pytest.raises(SettingsError, match=message):
        GenerateConfig(**settings)


def test_bad_input_is_one_line_before_any_model_loads(tiny_model, tmp_path, capsys):
    no_answer = tmp_path / "q.jsonl"
    no_answer.write_text(json.dumps({"id": "a", "question": "What is 2 + 3?"}) + "\n")
    cases = [
        (["--data", f"jsonl:{no_answer}"], f"{no_answer}, line 1: missing field 'answer' (the gold answer"),
        (["--backend", "vllm"], "--backend vllm needs vLLM"),
        (["--limit", "0"], "--limit 0: give a positive number"),
        (["--exclude", str(no_answer.with_suffix(".txt"))], "neither a run directory nor a .jsonl chain file"),
    ]
    for args, message in cases:
        assert main(["generate", "--model", "/no/such/model", "--data", f"jsonl:{EASY}", *args,
                     "--out", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_chat_prompt_needs_a_chat_template(tiny_model, tmp_path):
    tok = copy.deepcopy(tiny_model.tokenizer)
    tok.chat_template = None
    with pytest.raises(SettingsError, match="no chat template, so no --style instruct prompt: use --style plain"):
        generate_into(with_hf(tiny_model, tiny_model.hf, tok), PROBLEMS, tmp_path, GenerateConfig(), show_progress=False)


def test_excluded_problems_are_left_out(tiny_model, tmp_path):
    (tmp_path / "used.jsonl").write_text(json.dumps({"id": "e1"}) + "\n")
    summary = generate_chains(scripted(tiny_model, ["x"] * 3), f"jsonl:{EASY}", tmp_path / "out", limit=3,
                              exclude=[str(tmp_path / "used.jsonl")], samples=1, temperature=0.0,
                              show_progress=False)
    assert list(pd.read_parquet(tmp_path / "out" / "problems.parquet").example_id) == ["e2", "e3", "e4"]
    assert summary["problems"] == 3
    with pytest.raises(DataError):
        load_examples(f"jsonl:{EASY}")  # problems, not chains: prune would refuse them


@pytest.mark.slow
def test_generate_then_every_stage_from_the_command_line(model, tmp_path, capsys):
    """The embedded model writes its own chains for easy problems, then prunes them and the rest follows."""
    out = tmp_path / "own"
    assert main(["generate", "--data", f"jsonl:{EASY}", "--limit", "3", "--samples", "6", "--round-size", "3",
                 "--max-new-tokens", "80", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    chains = load_examples(f"jsonl:{out}/chains.jsonl")
    assert len(chains) >= 2, said
    run = tmp_path / "run"  # the short chains only: exact greedy's time grows with the square of the length
    assert main(["prune", "--data", f"jsonl:{out}/chains.jsonl", "--max-tokens", "30", "--out", str(run)]) == 0
    for args in (["features", str(run)], ["annotate", str(run)], ["analyze", str(run)]):
        assert main(args) == 0, capsys.readouterr().err
    pruned = pd.read_parquet(run / "examples.parquet")
    assert len(pruned) and set(pruned.example_id) <= {c.id for c in chains}
    assert list(pruned.model.unique()) == ["smollm2-135m"]  # the teacher prunes its own chains
    assert (run / "analysis").is_dir() and (run / "categories.parquet").exists()
