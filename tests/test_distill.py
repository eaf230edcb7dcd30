"""Distillation on a tiny random student: training sets, encoding, training, resume, the whole stage."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from prunelens.data import Example
from prunelens.distill import DistillConfig, EvalSet
from prunelens.distill.config import conditions
from prunelens.distill.data import IGNORE, encode, training_sets
from prunelens.distill.train import FINAL, train_student
from prunelens.errors import RunError
from prunelens.layout import render_text
from prunelens.pruning import prune_examples
from prunelens.schema import chains_at


@pytest.fixture(scope="module")
def runs(tiny_run):
    return {method: tiny_run(method, chains=4, keep_ratio=keep) for method, keep in
            (("greedy", 0.0), ("random", 0.0), ("truncate", 0.5))}


def _config(tiny_model, **settings):
    defaults = dict(student=str(tiny_model.path), epochs=2, learning_rate=3e-3, batch_size=2, save_steps=2,
                    max_new_tokens=6, eval_batch=2, kl_texts=2)
    return DistillConfig(**{**defaults, **settings})


def _sets(runs, ratios=(0.5,)):
    return training_sets(conditions(runs, ratios))


def test_labels_are_the_assistant_part_of_the_pruned_chain(tiny_model, runs):
    sets = _sets({"greedy": runs["greedy"]})
    assert set(sets) == {"greedy@0.5", "full", "answer-only"} and all(len(s) == 4 for s in sets.values())
    pruned = chains_at(runs["greedy"], 0.5).set_index("example_id")
    tok = tiny_model.tokenizer
    for name, rows in sets.items():
        for row in rows.itertuples():
            reasoning = {"greedy@0.5": pruned.loc[row.example_id, "reasoning"], "answer-only": ""}.get(name, None)
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
        _sets({"truncate": runs["truncate"]}, (0.25,))
    with pytest.raises(ValueError, match="full is a control's name"):
        _sets({"full": runs["greedy"]})


def test_conditions_are_each_run_at_each_keep_ratio_or_at_its_own():
    assert conditions({"greedy": "g", "lingua@0.8": "l8", "lingua@0.9": "l9"}, (0.8, 0.5)) == {
        "greedy@0.8": ("g", 0.8), "greedy@0.5": ("g", 0.5), "lingua@0.8": ("l8", 0.8), "lingua@0.9": ("l9", 0.9)}
    with pytest.raises(ValueError, match="greedy@0.8 is given twice"):
        conditions({"greedy": "g", "greedy@0.8": "h"}, (0.8,))
    with pytest.raises(ValueError, match="not METHOD@RATIO"):
        conditions({"greedy@1.5": "g"}, (0.8,))
    config = DistillConfig(keep_ratios=(0.8, 0.5), seeds=(0,), condition_seeds=(
        ("@0.8", (0, 1, 2)), ("greedy", (0, 1)), ("truncate@0.8", (5,))))
    assert config.seeds_of("greedy@0.8") == (0, 1)  # the method is more specific than the keep ratio
    assert config.seeds_of("random@0.8") == (0, 1, 2) and config.seeds_of("random@0.5") == (0,)
    assert config.seeds_of("truncate@0.8") == (5,) and config.seeds_of("full") == (0,)
    assert config.unknown_seed_keys({"greedy@0.8", "full"}) == ["truncate@0.8"]


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
    rows = _sets({"greedy": runs["greedy"]})["greedy@0.5"].head(2)
    config = _config(tiny_model, epochs=15)
    before = _mean_loss(tiny_model.path, tiny_model.tokenizer, rows)
    info = train_student(rows, tmp_path / "s", config, seed=0, show_progress=False)
    after = _mean_loss(tmp_path / "s" / FINAL, tiny_model.tokenizer, rows)
    assert info["steps"] == 15 and after < before - 2.0
    assert (tmp_path / "s" / FINAL / "model.safetensors").exists()


def test_a_killed_training_resumes_from_its_checkpoint(tiny_model, runs, tmp_path, monkeypatch):
    from transformers import Trainer

    rows = _sets({"greedy": runs["greedy"]})["greedy@0.5"]
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


@pytest.mark.parametrize("cpu_bf16", [False, True])
def test_cpu_bf16_runs_the_passes_in_bf16_over_float32_weights(tiny_model, runs, tmp_path, monkeypatch, cpu_bf16):
    rows = _sets({"greedy": runs["greedy"]})["greedy@0.5"].head(2)
    forward, seen = torch.nn.Linear.forward, set()

    def watched(self, x):
        out = forward(self, x)
        seen.add((self.weight.dtype, out.dtype))
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", watched)
    info = train_student(rows, tmp_path / "s", _config(tiny_model, epochs=1, cpu_bf16=cpu_bf16), seed=0,
                         show_progress=False)
    assert seen == {(torch.float32, torch.bfloat16 if cpu_bf16 else torch.float32)} and info["bf16"] is cpu_bf16
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(tmp_path / "s" / FINAL / "model.safetensors").values()} == {torch.float32}


def test_a_run_recorded_before_cpu_bf16_existed_resumes_as_float32(tiny_model, runs, tmp_path, monkeypatch):
    from prunelens.distill import distill, stage

    class Checked(Exception):
        pass

    def checked(*args):
        raise Checked

    monkeypatch.setattr(stage, "_grow_runs", checked)  # called right after the settings are compared
    held = EvalSet("held", "gsm-symbolic", limit=2)
    config, out = _config(tiny_model, eval_sets=(held,)), tmp_path / "distill"
    given = {"greedy": str(runs["greedy"])}
    with pytest.raises(Checked):
        distill(given, out, config, show_progress=False)
    record = json.loads((out / "distill.json").read_text())
    assert record.pop("cpu_bf16") is False
    (out / "distill.json").write_text(json.dumps(record))  # as written before the setting was added
    with pytest.raises(Checked):
        distill(given, out, config, show_progress=False)
    with pytest.raises(RunError, match="cpu_bf16=False \\(now True\\)"):
        distill(given, out, _config(tiny_model, eval_sets=(held,), cpu_bf16=True), show_progress=False)


@pytest.mark.slow  # end to end: the fast lane has its parts
def test_distill_trains_evaluates_and_resumes(tiny_model, runs, short_chains, tmp_path, monkeypatch, capsys):
    """The whole stage on a tiny student: every condition and the base model evaluated on a held-out set,
    paired against greedy, the comparison so far readable after a kill, and a second call redoes nothing."""
    from prunelens.cli import main
    from prunelens.distill import distill, stage

    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"id": e.id, "question": e.question, "reasoning": e.reasoning,
                                        "answer": e.answer}) + "\n" for e in short_chains[:7]))
    config = _config(tiny_model, eval_sets=(EvalSet("held", f"jsonl:{held}", limit=5),))
    out = tmp_path / "distill"
    student, calls = stage._student, []

    def killed_at_the_third(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        student(*args, **kwargs)

    monkeypatch.setattr(stage, "_student", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        distill({"greedy": runs["greedy"], "random": runs["random"]}, out, config, show_progress=False)
    so_far = pd.read_csv(out / "results.csv")
    assert list(so_far.method) == ["base", "full"]  # the two students that finished
    (out / "results.csv").unlink()

    def killed_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "_student", killed_at_once)
    with pytest.raises(KeyboardInterrupt):
        distill({"greedy": runs["greedy"], "random": runs["random"]}, out, config, show_progress=False)
    assert list(pd.read_csv(out / "results.csv").method) == ["base", "full"]  # a resumed run reports first
    monkeypatch.undo()
    tables = distill({"greedy": runs["greedy"], "random": runs["random"]}, out, config, show_progress=False)
    results = tables["results"]
    done = results.set_index("method").loc[["base", "full"]]
    assert so_far.set_index("method").accuracy.tolist() == done.accuracy.tolist()
    assert so_far.set_index("method").kl_drift.tolist() == pytest.approx(done.kl_drift.tolist())
    assert sorted(results.method) == ["answer-only", "base", "full", "greedy", "random"]
    assert (results.n_eval == 3).all()  # 7 problems, 4 of them in the training sets
    assert results.ci_low.le(results.accuracy).all() and results.accuracy.le(results.ci_high).all()
    trained = results[results.method != "base"].set_index("method")
    assert trained.loc["answer-only", "mean_train_reasoning_tokens"] == 0
    assert trained.loc["full", "mean_train_reasoning_tokens"] > trained.loc["greedy", "mean_train_reasoning_tokens"] > 0
    assert (trained.kl_drift > 0).all() and results.set_index("method").loc["base", "kl_drift"] == 0
    assert trained.loc["full", "train_broken_numbers"] == 0  # the whole chain states only the problem's numbers
    assert np.isnan(trained.loc["answer-only", "train_broken_numbers"])  # no reasoning, no numbers
    assert trained.loc["full", "train_result_kept"] == 1 and trained.loc["answer-only", "train_result_kept"] == 0
    assert results.set_index("method").loc["base", ["train_broken_numbers", "train_result_kept"]].isna().all()
    assert (results.eval_seconds > 0).all() and (trained.train_seconds > 0).all()
    assert set(tables["pairs"].method) == {"answer-only", "full", "random"}
    assert set(tables["pairs"].reference) == {"greedy@0.5"}
    gens = pd.read_parquet(out / "generations" / "greedy@0.5-s0.held.parquet")
    assert set(gens.example_id) == {e.id for e in short_chains[4:7]}
    for name in ("results.csv", "pairs.csv", "accuracy_vs_tokens.png"):
        assert (out / name).exists()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    stale = out / "students" / "random@0.5-s0" / "drift.json"
    stale.write_text(json.dumps({"kl_drift": 123.0}))  # read before drift laid texts out as training does
    again = distill({"greedy": runs["greedy"], "random": runs["random"]}, out, config, show_progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == stamps  # no generation redone
    assert again["results"].set_index("method").loc["random", "kl_drift"] == trained.loc["random", "kl_drift"]
    more = _config(tiny_model, eval_sets=config.eval_sets, condition_seeds=(("greedy", (0, 1)), ("random", (0, 1))),
                   seeds=(1,))
    with pytest.raises(ValueError, match="seeds for rnd, which is not a condition"):
        distill({"greedy": runs["greedy"]}, out, _config(tiny_model, eval_sets=config.eval_sets,
                                                           condition_seeds=(("rnd", (1,)),)))
    grown = distill({"greedy": runs["greedy"], "random": runs["random"]}, out, more, show_progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet") if p in stamps} == stamps  # seed 0 kept
    assert json.loads((out / "distill.json").read_text())["seeds"] == [1]  # the seeds asked for last
    assert sorted(zip(grown["results"].method, grown["results"].seed.fillna(-1))) == [  # every finished student
        ("answer-only", 0), ("answer-only", 1), ("base", -1), ("full", 0), ("full", 1), ("greedy", 0), ("greedy", 1),
        ("random", 0), ("random", 1)]
    pairs = grown["pairs"].assign(seed=grown["pairs"].seed.fillna(-1))
    assert sorted(zip(pairs.method, pairs.seed, pairs.test)) == [
        ("answer-only", -1, "sign-flip over seeds 0,1"), ("answer-only", 0, "mcnemar"), ("answer-only", 1, "mcnemar"),
        ("full", -1, "sign-flip over seeds 0,1"), ("full", 0, "mcnemar"), ("full", 1, "mcnemar"),
        ("random", -1, "sign-flip over seeds 0,1"), ("random", 0, "mcnemar"), ("random", 1, "mcnemar")]
    by_seed = pairs[pairs.method == "random"].set_index("seed")
    assert by_seed.loc[-1, "accuracy"] == pytest.approx((by_seed.loc[0, "accuracy"] + by_seed.loc[1, "accuracy"]) / 2)
    assert 0 < by_seed.loc[-1, "p_value"] <= 1 and by_seed.loc[-1, "n"] == 3
    three = {"greedy": runs["greedy"], "random": runs["random"], "truncate": runs["truncate"]}
    added = distill(three, out, more, show_progress=False)  # a run added: its students, nothing else redone
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet") if p in stamps} == stamps
    assert set(added["results"].method) == {"answer-only", "base", "full", "greedy", "random", "truncate"}
    assert set(json.loads((out / "distill.json").read_text())["runs"]) == set(three)
    with pytest.raises(RunError, match="give every run it was made with"):
        distill({"greedy": runs["greedy"], "random": runs["random"]}, out, more, show_progress=False)
    fewer = tmp_path / "fewer"
    prune_examples(tiny_model, short_chains[:3], fewer, method="random", show_progress=False)
    with pytest.raises(RunError, match="the training set of greedy@0.5 would change"):
        distill({**three, "fewer": fewer}, out, more, show_progress=False)
    assert main(["distill", "--run", "greedy=" + str(runs["greedy"]), "--eval", f"held=jsonl:{held}",
                 "--epochs", "3", "--out", str(out), "--student", str(tiny_model.path)]) == 2  # other settings
    assert main(["distill", "--run", "greedy=" + str(runs["greedy"]), "--eval", f"held=jsonl:{held}",
                 "--seeds-for", "greedy=0,x", "--out", str(out)]) == 2  # not seeds
    # the tables come back from the directory's files alone, and a plan adds its comparisons
    written = {name: (out / name).read_text() for name in ("results.csv", "pairs.csv")}
    for name in written:
        (out / name).unlink()
    (out / "plan.json").write_text(json.dumps({"eval_set": "held", "resamples": 200, "family": [
        {"a": "random@0.5", "b": "greedy@0.5"}, {"a": "truncate@0.5", "b": "greedy@0.5"}],
        "secondary": [{"a": "full", "b": "nothing@0.5"}]}))
    capsys.readouterr()
    assert main(["distill", "--report", str(out)]) == 0
    assert {name: (out / name).read_text() for name in written} == written
    said = capsys.readouterr().out
    assert "  base  " in said and "  full                 seed 0 " in said and "seed <NA>" not in said
    assert "planned comparisons (2 of 3 have both sides" in said and "  random@0.5 - greedy@0.5: " in said
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert list(comparisons.status) == ["done", "done", "pending"]
    random_row = comparisons.iloc[0]
    assert random_row.seeds_a == "0,1" and random_row.n_problems == 3
    assert random_row.difference == pytest.approx(random_row.accuracy_a - random_row.accuracy_b)
    summary = (out / "summary.md").read_text()  # the same tables in Markdown, for the docs
    assert "## Eval set `held`, keep 0.5" in summary and "| 2 | truncate@0.5 - greedy@0.5 | " in summary
    assert main(["distill", "--report", str(tmp_path)]) == 2  # no distill.json there
    # a clone has a student's train.json but not its weights: a generation cut off trains it again
    shutil.rmtree(out / "students" / "truncate@0.5-s1" / FINAL)
    (out / "generations" / "truncate@0.5-s1.held.parquet").unlink()
    (out / "generations" / "random@0.5-s1.held.parquet").unlink()
    assert main(["distill", "--report", str(out)]) == 0  # random's seed 0 alone: its comparison waits for seed 1
    assert list(pd.read_csv(out / "comparisons.csv").status) == ["pending", "pending", "pending"]
    distill(three, out, more, show_progress=False)
    assert (out / "generations" / "random@0.5-s1.held.parquet").exists()
    assert (out / "students" / "truncate@0.5-s1" / FINAL).is_dir()
    assert (out / "generations" / "truncate@0.5-s1.held.parquet").exists()
    assert main(["distill", "--report", str(out), "--run", "greedy=x"]) == 2


def test_students_are_trained_first_seeds_first_controls_first():
    """A run stopped early has the base model, both controls and every method at its first seed, at
    the first keep ratio; then that ratio's later seeds; then the next keep ratio."""
    from functools import partial

    from prunelens.distill.stage import _urgency

    config = DistillConfig(keep_ratios=(0.8, 0.9), seeds=(0,),
                           condition_seeds=(("greedy", (0, 1)), ("full", (0, 1)), ("truncate@0.5", (0, 1))))
    order = ["greedy@0.8", "greedy@0.9", "random@0.8", "random@0.9", "truncate@0.5", "full", "answer-only"]
    students = [("base", None), ("greedy@0.8", 0), ("greedy@0.8", 1), ("greedy@0.9", 0), ("greedy@0.9", 1),
                ("random@0.8", 0), ("random@0.9", 0), ("truncate@0.5", 0), ("truncate@0.5", 1), ("full", 0),
                ("full", 1), ("answer-only", 0)]
    assert sorted(students, key=partial(_urgency, config, order)) == [
        ("base", None), ("full", 0), ("answer-only", 0), ("greedy@0.8", 0), ("random@0.8", 0),
        ("full", 1), ("greedy@0.8", 1), ("greedy@0.9", 0), ("random@0.9", 0), ("greedy@0.9", 1),
        ("truncate@0.5", 0), ("truncate@0.5", 1)]
