"""The out-of-distribution pilot, step 1 (docs/distillation-plan.md, "Out of distribution: the pilot").

The base model and the ``full-s0`` student of ``experiments/distill-paper`` (trained again as the
own-chains teacher, ``experiments/own-chains/teacher.py``, which checks its loss curve against the
committed one) answer 500 problems of the held-out templates ``near``, decoded as that experiment's
``in`` set. Writes ``pilot/near.parquet`` (the problems), ``pilot/generations/MODEL.near.parquet``
(every reply) and ``pilot/step1.csv`` (accuracy, 95% Wilson interval, the plan's verdict).

    python experiments/distill-ood/pilot.py   # a finished model is not redone
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from prunelens.data import Example, drop_twins, load_examples
from prunelens.distill.config import DistillConfig
from prunelens.distill.evaluate import answer_problems, wilson_interval
from prunelens.models import load_model
from prunelens.store import write_table

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
PAPER = ROOT / "experiments" / "distill-paper"
MODELS = {"base": "smollm2-135m", "full-s0": str(ROOT / "experiments" / "own-chains" / "teacher" / "final")}
NEAR = "gsm-symbolic:templates=5,20,34,39,54,57,62,70,78"
SIZE, SEED = 500, 1


def problems(out: Path) -> list[Example]:
    """500 problems of ``NEAR``, seed 1, with no training problem and no repeat (as the ``in`` set)."""
    train = pd.read_parquet(PAPER / "train" / "full.parquet")
    kept, dropped = drop_twins(load_examples(NEAR, 4 * SIZE, SEED), zip(train.example_id, train.question))
    kept = kept[:SIZE]
    write_table(pd.DataFrame({"example_id": [e.id for e in kept], "question": [e.question for e in kept],
                              "answer": [e.answer for e in kept]}), out / "near.parquet")
    (out / "near.json").write_text(json.dumps({"source": NEAR, "seed": SEED, "kept": len(kept), **dropped}, indent=1))
    return kept


def main() -> None:
    out = HERE / "pilot"
    config = DistillConfig.from_recorded(json.loads((PAPER / "distill.json").read_text()))
    near = problems(out)
    rows = []
    for name, model in MODELS.items():
        path = out / "generations" / f"{name}.near.parquet"
        if not path.exists():
            write_table(answer_problems(load_model(model), near, "near", config.eval_sets[0].style,
                                        config.max_new_tokens, config.eval_batch, show_progress=True), path)
        correct = pd.read_parquet(path).correct
        low, high = wilson_interval(int(correct.sum()), len(correct))
        rows.append({"model": name, "eval_set": "near", "n": len(correct), "correct": int(correct.sum()),
                     "accuracy": correct.mean(), "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows)
    base, full = table.set_index("model").loc["base"], table.set_index("model").loc["full-s0"]
    table["step1_passes"] = bool(full.ci_low > base.ci_high)  # the plan's rule: full's interval wholly above
    table.to_csv(out / "step1.csv", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
