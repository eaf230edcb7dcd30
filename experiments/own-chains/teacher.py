"""The teacher of the own-chains experiment (docs/own-chains-plan.md, step 1b), and its problems.

The teacher is the ``full-s0`` student of ``experiments/distill-paper``: the embedded model fine-tuned
on the committed unpruned training set with that experiment's recorded settings and seed 0. Its
weights are not committed (540 MB); this script trains them again into ``teacher/final`` and checks
that the loss curve equals the committed ``students/full-s0/train.json``, so the teacher is that
student. It also writes ``problems.jsonl``: the experiment's clean in-template eval set (no training
problem, no twin of one), the problems the teacher writes chains for.

    python experiments/own-chains/teacher.py   # resumes from teacher/checkpoints
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from prunelens.distill.config import DistillConfig
from prunelens.distill.train import FINAL, train_student

HERE = Path(__file__).parent
PAPER = HERE.parent / "distill-paper"


def main() -> None:
    problems = pd.read_parquet(PAPER / "eval" / "in.parquet")
    problems.rename(columns={"example_id": "id"})[["id", "question", "answer"]].to_json(
        HERE / "problems.jsonl", orient="records", lines=True, force_ascii=False)
    out = HERE / "teacher"
    if not (out / FINAL).is_dir():
        config = DistillConfig.from_recorded(json.loads((PAPER / "distill.json").read_text()))
        record = train_student(pd.read_parquet(PAPER / "train" / "full.parquet"), out, config, seed=0)
        (out / "train.json").write_text(json.dumps(record, indent=1))
    ours = json.loads((out / "train.json").read_text())["loss_curve"]
    committed = json.loads((PAPER / "students" / "full-s0" / "train.json").read_text())["loss_curve"]
    worst = max(abs(float(a["loss"]) - float(b["loss"])) for a, b in zip(ours, committed, strict=True))
    print(f"loss curve against the committed full-s0: {len(ours)} points, largest difference {worst:.2e}")
    if not math.isclose(worst, 0.0, abs_tol=1e-3):
        raise SystemExit("the teacher is not the committed full-s0 student")


if __name__ == "__main__":
    main()
