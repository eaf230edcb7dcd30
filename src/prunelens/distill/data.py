"""Training sets: the chain each condition keeps at a keep ratio, and its encoding for a student.

A condition is a method's run read at a keep ratio (any run ``schema.chains_at`` reads: deletion
orders or compressed texts) or a control: ``full`` (the unpruned chain) and ``answer-only`` (no
reasoning), built from the first run's chains. Every condition trains on the same problems: those all runs share.
The student sees the pruning layout (``layout.render``): the question through its chat template,
then the (pruned) reasoning, then the answer line; labels are -100 on the prompt, so the loss
falls on the assistant part only. Pruned text is tokenised again by the student's tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..data import Example
from ..errors import RunError, SettingsError
from ..layout import render
from ..schema import chains_at
from ..store import natural_key

IGNORE = -100  # label of a token that carries no loss
COLUMNS = ["example_id", "question", "reasoning", "answer"]


def training_sets(conditions: Mapping[str, tuple[str | Path, float]], limit: int | None = None
                  ) -> dict[str, pd.DataFrame]:
    """``{condition: rows}`` (``example_id, question, reasoning, answer``) for each ``(run, keep_ratio)``
    of ``conditions`` (``config.conditions``) and both controls, on the problems every run shares."""
    if not conditions:
        raise SettingsError("give at least one run to distil from")
    # one-line error where a run falls short of its keep ratio
    sets = {name: chains_at(run, ratio) for name, (run, ratio) in conditions.items()}
    full = chains_at(next(iter(conditions.values()))[0], 1.0)
    sets["full"] = full
    sets["answer-only"] = full.assign(reasoning="", n_kept=0)
    shared = set.intersection(*(set(rows.example_id) for rows in sets.values()))
    questions = full.set_index("example_id").question
    for name, rows in sets.items():
        differ = rows[rows.example_id.isin(shared) & (rows.question != rows.example_id.map(questions))]
        if len(differ):
            raise RunError(f"run {name} holds another problem under id {differ.example_id.iloc[0]}: "
                           "distil from runs of the same data")
    if not shared:
        raise RunError("the runs share no problem: distil from runs of the same data")
    keep = sorted(shared, key=natural_key)[:limit]
    return {name: rows.set_index("example_id").loc[keep].reset_index()[COLUMNS] for name, rows in sets.items()}


def encode(tokenizer, row, max_length: int | None = None) -> dict[str, list[int]]:
    """``input_ids`` and ``labels`` of one training chain (a row with question, reasoning, answer)."""
    layout = render(Example(str(row.example_id), row.question, row.reasoning, row.answer), tokenizer, max_length,
                    empty_ok=True)
    return {"input_ids": layout.ids,
            "labels": [IGNORE] * len(layout.prompt_ids) + layout.reasoning_ids + layout.post_ids}


def student_tokens(tokenizer, rows: pd.DataFrame) -> list[int]:
    """Reasoning tokens of each chain of a training set, in the student's tokens (0 for none)."""
    return [len(tokenizer(r, add_special_tokens=False)["input_ids"]) if r else 0 for r in rows.reasoning]
