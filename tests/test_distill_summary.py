"""The report's Markdown tables (``distill.summary``), by hand, and the docs quoting them unchanged."""

import math
import re
from pathlib import Path

import pandas as pd

from prunelens.distill.summary import COMPARISON_COLUMNS, STUDENT_COLUMNS, comparisons_table, students_table

ROOT = Path(__file__).resolve().parents[1]
NAN = math.nan


def _results() -> pd.DataFrame:
    rows = [("base", NAN, None, 0.02, 0.0, NAN, NAN, 80.0),
            ("full", 1.0, 1, 0.5, 40.0, 0.0, 1.0, 50.0), ("full", 1.0, 0, 0.4, 40.0, 0.0, 1.0, 48.0),
            ("greedy", 0.8, 0, 0.2, 32.0, 0.1, 0.8, 41.0), ("greedy", 0.8, 1, 0.4, 32.0, 0.1, 0.8, 43.0),
            ("truncate", 0.8, 0, 0.35, 32.5, 0.0, 0.25, 40.0), ("greedy", 0.9, 0, 0.9, 36.0, 0.0, 1.0, 45.0)]
    columns = ["method", "keep_ratio", "seed", "accuracy", "mean_train_reasoning_tokens", "train_broken_numbers",
               "train_result_kept", "mean_output_tokens"]
    return pd.DataFrame(rows, columns=columns).assign(eval_set="in").astype({"seed": "Int64"})


def test_students_table_has_base_controls_then_methods_at_the_ratio_best_first():
    lines = students_table(_results(), "in", 0.8).splitlines()
    assert lines[2:] == [
        "| base model (not trained) | 0.020 | 0.020 | - | - | - | 80.0 |",
        "| full | 0.400 (s0) / 0.500 (s1) | 0.450 | 40.0 | 0.00 | 1.00 | 49.0 |",
        "| truncate@0.8 | 0.350 (s0) | 0.350 | 32.5 | 0.00 | 0.25 | 40.0 |",
        "| greedy@0.8 | 0.200 (s0) / 0.400 (s1) | 0.300 | 32.0 | 0.10 | 0.80 | 42.0 |"]


def test_comparisons_keep_the_plans_numbers_and_show_a_zero_p_as_a_bound():
    base = {"difference": 0.1, "ci_low": 0.05, "ci_high": 0.15, "log_odds": 0.5, "log_odds_low": 0.25,
            "log_odds_high": 0.75}
    comparisons = pd.DataFrame([
        {"family": "family", "a": "x", "b": "y", "status": "done", "p_value": 0.0, "p_holm": 0.0, "verdict": "a > b",
         **base},
        {"family": "family", "a": "x", "b": "z", "status": "pending", "verdict": "pending"},
        {"family": "family", "a": "y", "b": "z", "status": "done", "p_value": 0.02, "p_holm": 0.04,
         "verdict": "a > b", **base},
        {"family": "secondary", "a": "z", "b": "y", "status": "done", "p_value": 0.3, "verdict": "secondary", **base}])
    assert comparisons_table(comparisons, resamples=1000).splitlines()[2:] == [
        "| 1 | x - y | +0.100 (+0.050, +0.150) | < 0.002 | < 0.002 | +0.50 (+0.25, +0.75) | a > b |",
        "| 3 | y - z | +0.100 (+0.050, +0.150) | 0.0200 | 0.0400 | +0.50 (+0.25, +0.75) | a > b |",
        "| s | z - y | +0.100 (+0.050, +0.150) | 0.3000 | - | +0.50 (+0.25, +0.75) | secondary |"]


def _tables(text: str) -> list[str]:
    return ["\n".join(m.group(0).splitlines()) for m in re.finditer(r"(?m)^(\|.*\|\n?)+", text)]


def test_the_docs_distillation_tables_are_the_reports_unchanged():
    heads = {"| " + " | ".join(columns) + " |" for columns in (STUDENT_COLUMNS, COMPARISON_COLUMNS)}
    quoted = [t for t in _tables((ROOT / "docs" / "results.md").read_text()) if t.splitlines()[0] in heads]
    written = (ROOT / "experiments" / "distill-paper" / "summary.md").read_text()
    assert quoted, "docs/results.md quotes no table of the distillation report"
    stale = [t.splitlines()[2] for t in quoted if t not in written]
    assert not stale, f"docs/results.md has tables unlike experiments/distill-paper/summary.md, from {stale}"
