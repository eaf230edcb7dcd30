"""Distillation on a tiny random student: training sets, encoding, training, resume, the whole stage."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from prunelens.data import Example
from prunelens.distill import DistillConfig, EvalSet
from prunelens.distill.data import IGNORE, encode, training_sets
from prunelens.distill.train import FINAL, train_student
from prunelens.errors import RunError
from prunelens.layout import render_text
from prunelens.pruning import prune_examples
from prunelens.schema import chains_at


@pytest.fixture(scope="module")
def runs(tiny_model, short_chains, tmp_path_factory):
    root = tmp_path_factory.mktemp("distill-runs")
    out = {}
    for method, keep in (("greedy", 0.0), ("random", 0.0), ("truncate", 0.5)):
        out[method] = root / method
        prune_examples(tiny_model, short_chains[:4], out[method], method=method, keep_ratio=keep, show_progress=False)
    return out


def _config(tiny_model, **settings):
    defaults = dict(student=str(tiny_model.path), epochs=2, learning_rate=3e-3, batch_size=2, save_steps=2,
                    max_new_tokens=6, eval_batch=2, kl_texts=2)
    return DistillConfig(**{**defaults, **settings})


def test_labels_are_the_assistant_part_of_the_pruned_chain(tiny_model, runs):
    sets = training_sets({"greedy": runs["greedy"]}, 0.5)
    assert set(sets) == {"greedy", "full", "answer-only"} and all(len(s) == 4 for s in sets.values())
    pruned = chains_at(runs["greedy"], 0.5).set_index("example_id")
    tok = tiny_model.tokenizer
    for name, rows in sets.items():
        for row in rows.itertuples():
            reasoning = {"greedy": pruned.loc[row.example_id, "reasoning"], "answer-only": ""}.get(name, None)
            if reasoning is not None:
                assert row.reasoning == reasoning
            ids, labels = encode(tok, row).values()
            text = render_text(Example(row.example_id, row.question, row.reasoning, row.answer), tok)
            assert tok.decode(ids) == text
            prompt = tok.apply_chat_template([{"role": "user", "content": row.question}], tokenize=False,
                                             add_generation_prompt=True)
            masked = [i for i, label in enumerate(labels) if label == IGNORE]
            assert masked == list(range(len(tok(prompt, add_special_tokens=False)["input_ids"])))  # the prompt, only
            assert tok.decode([label for label in labels if label != IGNORE]) == text[len(prompt):]


def test_a_keep_ratio_a_run_does_not_reach_is_refused(runs):
    with pytest.raises(RunError, match="stopped before keep ratio 0.25"):
        training_sets({"truncate": runs["truncate"]}, 0.25)
    with pytest.raises(ValueError, match="full is a control's name"):
        training_sets({"full": runs["greedy"]}, 0.5)


def _mean_loss(path, tok, rows):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path).eval()
    losses = []
    for row in rows.itertuples():
        ids, labels = encode(tok, row).values()
        with torch.no_grad():
            losses.append(float(model(torch.tensor([ids]), labels=torch.tensor([labels])).loss))
    return float(np.mean(losses))


def test_training_memorises_a_tiny_set(tiny_model, runs, tmp_path):
    rows = training_sets({"greedy": runs["greedy"]}, 0.5)["greedy"].head(2)
    config = _config(tiny_model, epochs=15)
    before = _mean_loss(tiny_model.path, tiny_model.tokenizer, rows)
    info = train_student(rows, tmp_path / "s", config, seed=0, show_progress=False)
    after = _mean_loss(tmp_path / "s" / FINAL, tiny_model.tokenizer, rows)
    assert info["steps"] == 15 and after < before - 2.0
    assert (tmp_path / "s" / FINAL / "model.safetensors").exists()


def test_a_killed_training_resumes_from_its_checkpoint(tiny_model, runs, tmp_path, monkeypatch):
    from transformers import Trainer

    rows = training_sets({"greedy": runs["greedy"]}, 0.5)["greedy"]
    config = _config(tiny_model, epochs=3)  # 4 chains, batch 2: 6 steps, a checkpoint every 2
    whole = train_student(rows, tmp_path / "whole", config, seed=0, show_progress=False)
    step = Trainer.training_step
    calls = {"n": 0}

    def dies_at_step_5(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_student(rows, tmp_path / "killed", config, seed=0, show_progress=False)
    assert not (tmp_path / "killed" / FINAL).exists()
    done = {"n": 0}

    def counted(self, *args, **kwargs):
        done["n"] += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", counted)
    resumed = train_student(rows, tmp_path / "killed", config, seed=0, show_progress=False)
    assert resumed["steps"] == whole["steps"] == 6
    assert done["n"] == 2  # steps 5 and 6 only: steps 1-4 came from the checkpoint
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / d / FINAL / "model.safetensors") for d in ("whole", "killed"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # the same student as an unbroken run
