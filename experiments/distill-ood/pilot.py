"""The out-of-distribution pilot (docs/distillation-plan.md, "Out of distribution: the pilot").

Step 1: the base model and the ``full-s0`` student of ``experiments/distill-paper`` (trained again as
the own-chains teacher, ``experiments/own-chains/teacher.py``, which checks its loss curve against
the committed one) answer 500 problems of the held-out templates ``near``, decoded as that
experiment's ``in`` set. Steps 2 and 3: a ``full`` student trained on 1,000 reference chains of 39
templates (the twelve and the 27 listed in the plan, none of ``near``) for 3 and 6 epochs, with the
experiment's other settings and seed 0, answers the same problems; step 3 trains in bf16 autocast
(``cpu_bf16``: its 750 float32 steps outlast a working session here, and a new session starts
without the checkpoints). Each step passes if the student's 95% Wilson interval lies wholly above
the base model's.

Writes ``pilot/near.parquet`` (the problems), ``pilot/wide.parquet`` (the 39-template training set,
with no twin of an ``in`` or ``near`` problem), ``pilot/students/NAME/train.json`` (loss curve; the
weights are not committed), ``pilot/generations/MODEL.near.parquet`` (every reply) and
``pilot/stepN.csv`` (accuracy, interval, verdict).

    python experiments/distill-ood/pilot.py 1   # or 2, 3; a finished model is not redone
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pandas as pd

from prunelens.data import Example, drop_twins, load_examples
from prunelens.distill.config import DistillConfig
from prunelens.distill.evaluate import answer_problems, wilson_interval
from prunelens.distill.train import FINAL, train_student
from prunelens.models import load_model
from prunelens.store import write_table

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
OUT = HERE / "pilot"
PAPER = ROOT / "experiments" / "distill-paper"
NEAR = "gsm-symbolic:templates=5,20,34,39,54,57,62,70,78"
SIZE, SEED = 500, 1
TRAINING = "4,6,10,16,26,31,43,45,48,72,75,99"  # the twelve of experiments/distill-paper
FURTHER = "0,1,2,9,12,14,15,24,28,30,36,38,40,46,47,51,52,53,55,58,60,66,69,80,83,84,89"
WIDE, WIDE_SIZE, WIDE_SEED = f"gsm-symbolic:templates={TRAINING},{FURTHER}", 1000, 0
STEPS = {2: {"epochs": 3.0}, 3: {"epochs": 6.0, "cpu_bf16": True}}


def problems() -> list[Example]:
    """500 problems of ``NEAR``, seed 1, with no training problem and no repeat (as the ``in`` set)."""
    train = pd.read_parquet(PAPER / "train" / "full.parquet")
    kept, dropped = drop_twins(load_examples(NEAR, 4 * SIZE, SEED), zip(train.example_id, train.question))
    kept = kept[:SIZE]
    write_table(pd.DataFrame({"example_id": [e.id for e in kept], "question": [e.question for e in kept],
                              "answer": [e.answer for e in kept]}), OUT / "near.parquet")
    (OUT / "near.json").write_text(json.dumps({"source": NEAR, "seed": SEED, "kept": len(kept), **dropped}, indent=1))
    return kept


def wide_set(near: list[Example]) -> pd.DataFrame:
    """1,000 reference chains of the 39 templates, seed 0, with no twin of an eval problem and no repeat."""
    held = pd.concat([pd.read_parquet(PAPER / "eval" / "in.parquet"),
                      pd.DataFrame({"example_id": [e.id for e in near], "question": [e.question for e in near]})])
    kept, dropped = drop_twins(load_examples(WIDE, 2 * WIDE_SIZE, WIDE_SEED), zip(held.example_id, held.question))
    if len(kept) < WIDE_SIZE:
        raise SystemExit(f"only {len(kept)} distinct training problems in {WIDE}")
    rows = pd.DataFrame([{"example_id": e.id, "question": e.question, "reasoning": e.reasoning, "answer": e.answer}
                         for e in kept[:WIDE_SIZE]])
    write_table(rows, OUT / "wide.parquet")
    (OUT / "wide.json").write_text(json.dumps({"source": WIDE, "seed": WIDE_SEED, "kept": WIDE_SIZE, **dropped},
                                              indent=1))
    return rows


def models(step: int, config: DistillConfig, near: list[Example]) -> dict[str, str]:
    """The models a step compares: the base model and that step's ``full`` student (trained if missing)."""
    if step == 1:
        return {"base": "smollm2-135m", "full-s0": str(ROOT / "experiments" / "own-chains" / "teacher" / "final")}
    name = f"full-wide-e{STEPS[step]['epochs']:g}-s0"
    folder = OUT / "students" / name
    if not (folder / "train.json").exists():  # written after the weights: a killed training resumes
        rows = pd.read_parquet(OUT / "wide.parquet") if (OUT / "wide.parquet").exists() else wide_set(near)
        record = train_student(rows, folder, dataclasses.replace(config, **STEPS[step]), seed=0)
        (folder / "train.json").write_text(json.dumps(record, indent=1))
    return {"base": "smollm2-135m", name: str(folder / FINAL)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", type=int, choices=[1, 2, 3])
    step = parser.parse_args().step
    config = DistillConfig.from_recorded(json.loads((PAPER / "distill.json").read_text()))
    near = problems()
    rows = []
    for name, model in models(step, config, near).items():
        path = OUT / "generations" / f"{name}.near.parquet"
        if not path.exists():
            write_table(answer_problems(load_model(model), near, "near", config.eval_sets[0].style,
                                        config.max_new_tokens, config.eval_batch, show_progress=True), path)
        correct = pd.read_parquet(path).correct
        low, high = wilson_interval(int(correct.sum()), len(correct))
        rows.append({"model": name, "eval_set": "near", "n": len(correct), "correct": int(correct.sum()),
                     "accuracy": correct.mean(), "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows)
    base, student = table.iloc[0], table.iloc[1]
    table[f"step{step}_passes"] = bool(student.ci_low > base.ci_high)  # the plan's rule: wholly above
    table.to_csv(OUT / f"step{step}.csv", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
