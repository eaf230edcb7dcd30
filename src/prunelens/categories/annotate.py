"""The annotate stage: every reasoning token of a run labelled with one of the six categories.

Annotators are pluggable: anything with ``name`` and ``label_tokens(question, reasoning, spans)``
(one label per token span) can replace ``RuleAnnotator``; ``DemoAnnotator`` (``demo``) reads labels
made elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd

from ..errors import DataError
from ..schema import CATEGORIES, EXAMPLES, LABELS, TOKENS, read_table
from ..store import write_table
from .rules import RuleAnnotator


class Annotator(Protocol):
    name: str

    def label_tokens(self, question: str, reasoning: str, spans: Sequence[tuple[int, int]]) -> list[str]: ...


def categories_table(examples: pd.DataFrame, tokens: pd.DataFrame, annotator: Annotator | None = None) -> pd.DataFrame:
    """``example_id, position, token_text, char_start, char_end, category, annotator`` for every token."""
    annotator = annotator or RuleAnnotator()
    frames = []
    for example_id, rows in tokens.groupby("example_id", sort=False):
        ex = examples.loc[examples.example_id == example_id].iloc[0]
        spans = list(zip(rows.char_start, rows.char_end))
        labels = annotator.label_tokens(ex.question, ex.reasoning, spans)
        bad = sorted(set(labels) - set(LABELS))
        if bad:
            raise DataError(f"annotator {annotator.name!r} gave unknown labels {bad} for {example_id}")
        frames.append(rows[["example_id", "position", "token_text", "char_start", "char_end"]]
                      .assign(category=labels, annotator=annotator.name))
    return pd.concat(frames, ignore_index=True)


def annotate_run(run: str | Path, annotator: Annotator | None = None) -> Path:
    """Write ``RUN/categories.parquet`` for a pruned run."""
    table = categories_table(read_table(run, EXAMPLES), read_table(run, TOKENS), annotator)
    return write_table(table, Path(run) / f"{CATEGORIES}.parquet")


def annotate_examples(tokenizer, examples, out: str | Path, annotator: Annotator | None = None) -> Path:
    """Write ``OUT/categories.parquet`` for chains not pruned yet, tokenised by ``tokenizer`` exactly as
    ``prune`` does."""
    from ..layout import render

    ex_rows, tok_rows = [], []
    for example in examples:
        layout = render(example, tokenizer)
        ex_rows.append({"example_id": example.id, "question": example.question, "reasoning": example.reasoning})
        for position, (start, end) in enumerate(layout.spans):
            tok_rows.append({"example_id": example.id, "position": position,
                             "token_text": example.reasoning[start:end], "char_start": start, "char_end": end})
    table = categories_table(pd.DataFrame(ex_rows), pd.DataFrame(tok_rows), annotator)
    return write_table(table, Path(out) / f"{CATEGORIES}.parquet")
