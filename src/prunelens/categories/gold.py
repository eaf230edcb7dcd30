"""How well an annotator labels hand-labelled chains (the gold sets in ``tests/data``): word accuracy,
per-label precision, recall and F1, macro-F1 and the confusion matrix."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..schema import LABELS
from .annotate import Annotator


def evaluate(annotator: Annotator, gold: Sequence[dict]) -> dict:
    """Word-level accuracy, per-label precision/recall/F1, macro-F1 and confusion matrix on ``gold``.

    ``gold`` rows hold ``question``, ``reasoning`` and ``words`` = ``[start, end, text, label]``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    truth, guess = [], []
    for row in gold:
        spans = [(start, end) for start, end, _, _ in row["words"]]
        guess += annotator.label_tokens(row["question"], row["reasoning"], spans)
        truth += [label for _, _, _, label in row["words"]]
    p, r, f, support = precision_recall_fscore_support(truth, guess, labels=list(LABELS), zero_division=0)
    return {
        "words": len(truth), "accuracy": accuracy_score(truth, guess),
        "macro_f1": f1_score(truth, guess, labels=list(LABELS), average="macro", zero_division=0),
        "per_label": {label: {"precision": p[i], "recall": r[i], "f1": f[i], "support": int(support[i])}
                      for i, label in enumerate(LABELS)},
        "confusion": {"labels": list(LABELS), "matrix": confusion_matrix(truth, guess, labels=list(LABELS)).tolist()},
    }


def load_gold(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
