"""The published demo format (one JSON object per chain with ``reason_tokens_json``): writing a run's
labels in it, and reading labels made elsewhere (an LLM, a person) back as an annotator."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..errors import DataError
from ..schema import CATEGORIES, EXAMPLES, KEYS, TOKENS, read_table
from ..store import write_text


def export_demo(run: str | Path, path: str | Path, justification: str = "") -> Path:
    """Write the published demo format: one JSON object per example with ``reason_tokens_json``."""
    examples = read_table(run, EXAMPLES)
    merged = read_table(run, TOKENS).merge(read_table(run, CATEGORIES)[[*KEYS, "category"]], on=list(KEYS))
    lines = []
    for _, ex in examples.iterrows():
        rows = merged[merged.example_id == ex.example_id]
        tokens = [{"token_position": int(r.position), "token_text": r.token_text,
                   "deleted_step": None if pd.isna(r.deleted_step) else int(r.deleted_step),
                   "category": r.category, "justification": justification} for r in rows.itertuples()]
        lines.append(json.dumps({"id": ex.example_id, "question": ex.question,
                                 "reason_tokens_json": tokens}, ensure_ascii=False))
    return write_text("\n".join(lines) + "\n", Path(path))


def import_demo(path: str | Path) -> pd.DataFrame:
    """Read the demo format into a token table (``example_id`` is ``id`` or the line number)."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            tokens = obj["reason_tokens_json"]
            if isinstance(tokens, str):
                tokens = json.loads(tokens)
            for t in tokens:
                rows.append({"example_id": str(obj.get("id", lineno)), "question": obj["question"],
                             "position": int(t["token_position"]), "token_text": t["token_text"],
                             "deleted_step": t.get("deleted_step"), "category": t["category"],
                             "justification": t.get("justification", "")})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}, line {lineno}: not in the demo format ({type(err).__name__}: {err})") from None
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["deleted_step"] = frame["deleted_step"].astype("Int64")
    return frame


class DemoAnnotator:
    """Labels made elsewhere (an LLM, a person), read from a demo-format file.

    Each chain is found by its question and must be tokenised exactly as the run is: the token
    texts of the file and of the run are compared, and any difference is a one-line error.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"demo:{self.path.name}"
        self._chains: dict[str, tuple[str, list[str], list[str]]] | None = None

    def _lookup(self, question: str) -> tuple[str, list[str], list[str]]:
        if self._chains is None:
            table = import_demo(self.path).sort_values(["example_id", "position"], kind="stable")
            self._chains = {q: (str(rows.example_id.iloc[0]), list(rows.token_text), list(rows.category))
                            for q, rows in table.groupby("question", sort=False)}
        if question not in self._chains:
            raise DataError(f"{self.path}: no chain with the question {question[:60]!r}")
        return self._chains[question]

    def label_tokens(self, question: str, reasoning: str, spans: Sequence[tuple[int, int]]) -> list[str]:
        example_id, texts, labels = self._lookup(question)
        ours = [reasoning[start:end] for start, end in spans]
        if ours != texts:
            k = next((i for i, (a, b) in enumerate(zip(ours, texts)) if a != b), min(len(ours), len(texts)))
            raise DataError(f"{self.path}, chain {example_id}: tokens differ from the run's at position {k} "
                            f"({len(texts)} tokens in the file, {len(ours)} in the run): another tokenizer?")
        return labels
