"""A distillation directory's tables, recomputed from its files alone (``prunelens distill --report DIR``).

Reads ``distill.json``, ``train/*.parquet``, ``students/*/train.json`` and ``drift.json``, and
``generations/*.parquet``: no model, no run directory. Writes:

- ``results.csv``: one row per student (condition and seed; ``base``, the untrained student, too)
  and eval set: accuracy with its Wilson 95% interval, the training set's mean reasoning tokens
  in the student's tokens, its hedge rate and broken numbers, the student's training steps,
  output tokens, hedge rate, drift and time;
- ``pairs.csv``: each condition beside the reference (``greedy``, else the first run's method) at
  the same keep ratio (the controls: at the first keep ratio): exact McNemar per shared seed, and
  where both have several seeds a sign-flip test of the per-problem accuracy averaged over them;
- ``comparisons.csv``: the comparisons ``plan.json`` names, tested as ``distill.stats`` says;
- ``summary.md``: those tables in Markdown, for the docs to quote (``distill.summary``);
- ``accuracy_vs_tokens.{png,pdf}``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .config import CONTROLS, DistillConfig, conditions, label, parse_label

BASE = "base"
DRIFT_LAYOUT = "render"  # drift.json before this key laid texts out unlike training: measured again


def student_label(condition: str, seed: int | None) -> str:
    """``CONDITION-sSEED`` (``greedy@0.8-s1``), or ``base`` for the untrained student."""
    return BASE if seed is None else f"{condition}-s{seed}"


def parse_student(name: str) -> tuple[str, int | None]:
    """``(condition, seed)`` of a student's label (the inverse of ``student_label``)."""
    if name == BASE:
        return BASE, None
    condition, _, seed = name.rpartition("-s")
    return condition, int(seed)


def generations_path(out: Path, name: str, eval_set: str) -> Path:
    """Where the student ``name`` (a label: ``greedy@0.8-s0``, ``base``) keeps its replies on ``eval_set``."""
    return out / "generations" / f"{name}.{eval_set}.parquet"


def finished(path: Path) -> bool:
    """Written, and for drift measured the current way."""
    if path.name == "drift.json":
        return path.exists() and json.loads(path.read_text()).get("layout") == DRIFT_LAYOUT
    return path.exists()


def done(out: Path, name: str, config: DistillConfig) -> bool:
    """Whether every file of the student ``name`` is written (base: its generations only)."""
    folder = out / "students" / name
    files = [] if name == BASE else [folder / "train.json", folder / "drift.json"]
    files += [generations_path(out, name, spec.name) for spec in config.eval_sets]
    return all(finished(path) for path in files)


def _order(record: dict, config: DistillConfig) -> list[str]:
    """Conditions in report order: the controls, then each run at each keep ratio, as given."""
    return list(CONTROLS) + list(conditions(record["runs"], config.keep_ratios))


def write_report(out: str | Path) -> dict[str, pd.DataFrame]:
    """Write and return ``results``, ``pairs`` and (with a ``plan.json``) ``comparisons`` of ``out``."""
    from ..figures import distill_figure, save_figure
    from ..numbers import broken_number_share, problem_texts, result_kept_share
    from ..store import write_text
    from .evaluate import hedge_rate
    from .stats import RESAMPLES, planned_comparisons, read_plan, resamples_of
    from .summary import summary

    out = Path(out)
    record = json.loads((out / "distill.json").read_text())
    config = DistillConfig.from_recorded(record)
    order = _order(record, config)
    sets = {name: pd.read_parquet(out / "train" / f"{name}.parquet") for name in order
            if (out / "train" / f"{name}.parquet").exists()}
    said = problem_texts(sets["full"])
    chains = dict(zip(sets["full"].example_id, sets["full"].reasoning))
    train_stats = {name: {"mean_train_reasoning_tokens": float(rows.student_tokens.mean()),
                          "train_hedge_rate": hedge_rate(list(rows.reasoning), list(rows.student_tokens)),
                          "train_broken_numbers": broken_number_share(list(rows.reasoning),
                                                                      [said[i] for i in rows.example_id]),
                          "train_result_kept": result_kept_share(list(rows.reasoning),
                                                                 [chains[i] for i in rows.example_id])}
                   for name, rows in sets.items()}
    folders = sorted(p.name for p in (out / "students").glob("*") if p.is_dir()) if (out / "students").exists() else []
    students = [parse_student(name) for name in [BASE] + folders if done(out, name, config)]
    students.sort(key=lambda s: (-1, 0) if s[1] is None else (order.index(s[0]) if s[0] in order else len(order), s[1]))
    rows = []
    for condition, seed in students:
        name = student_label(condition, seed)
        trained = {} if seed is None else json.loads((out / "students" / name / "train.json").read_text())
        drift = 0.0 if seed is None else json.loads((out / "students" / name / "drift.json").read_text())["kl_drift"]
        method, ratio = (BASE, math.nan) if seed is None else parse_label(condition)
        # the base model has no training set: no chain statistics, and 0 reasoning tokens on the figure
        stats = ({**dict.fromkeys(train_stats["full"], math.nan), "mean_train_reasoning_tokens": 0.0} if seed is None
                 else train_stats[condition])
        for spec in config.eval_sets:
            rows.append({"condition": condition, "method": method, "keep_ratio": ratio, "seed": seed,
                         "eval_set": spec.name,
                         "gens": pd.read_parquet(generations_path(out, name, spec.name)),
                         **stats, "kl_drift": drift,
                         "train_steps": trained.get("steps", 0), "train_seconds": trained.get("seconds", 0.0)})
    methods = [parse_label(c)[0] for c in order if c not in CONTROLS]
    reference = "greedy" if "greedy" in methods else methods[0]
    results = _results(rows)
    pairs = _pairs(rows, reference, config.keep_ratios[0])
    tables = {"results": results, "pairs": pairs}
    write_text(results.to_csv(index=False), out / "results.csv")
    write_text(pairs.to_csv(index=False), out / "pairs.csv")
    resamples = RESAMPLES
    if (out / "plan.json").exists():
        plan = read_plan(out / "plan.json")
        resamples = resamples_of(plan)
        answers = {}
        for r in rows:
            if r["eval_set"] == plan["eval_set"] and r["seed"] is not None:
                answers.setdefault(r["condition"], {})[r["seed"]] = r["gens"].set_index("example_id").correct
        # a condition missing any of its planned seeds leaves its comparisons pending, not read early
        frames = {c: pd.DataFrame(by_seed).T.astype(float) for c, by_seed in answers.items()
                  if set(config.seeds_of(c)) <= set(by_seed)}
        tables["comparisons"] = planned_comparisons(frames, plan)
        write_text(tables["comparisons"].to_csv(index=False), out / "comparisons.csv")
    write_text(summary(results, tables.get("comparisons"), resamples), out / "summary.md")
    if len(results):
        save_figure(distill_figure(results), out, "accuracy_vs_tokens")
    return tables


def _results(rows: list[dict]) -> pd.DataFrame:
    from .evaluate import hedge_rate, wilson_interval

    results = []
    for r in rows:
        gens = r["gens"]
        low, high = wilson_interval(int(gens.correct.sum()), len(gens))
        results.append({"method": r["method"], "keep_ratio": r["keep_ratio"], "seed": r["seed"],
                        "eval_set": r["eval_set"], "n_eval": len(gens), "accuracy": float(gens.correct.mean()),
                        "ci_low": low, "ci_high": high,
                        "mean_train_reasoning_tokens": r["mean_train_reasoning_tokens"],
                        "mean_output_tokens": float(gens.n_tokens.mean()),
                        "hedge_rate": hedge_rate(list(gens.text), list(gens.n_tokens)),
                        "train_hedge_rate": r["train_hedge_rate"], "train_broken_numbers": r["train_broken_numbers"],
                        "train_result_kept": r["train_result_kept"],
                        "kl_drift": r["kl_drift"], "train_steps": r["train_steps"], "train_seconds": r["train_seconds"],
                        "eval_seconds": float(gens.seconds.sum())})
    columns = ["method", "keep_ratio", "seed", "eval_set", "n_eval", "accuracy", "ci_low", "ci_high",
               "mean_train_reasoning_tokens", "mean_output_tokens", "hedge_rate", "train_hedge_rate",
               "train_broken_numbers", "train_result_kept", "kl_drift", "train_steps", "train_seconds", "eval_seconds"]
    return pd.DataFrame(results, columns=columns).astype({"seed": "Int64"})  # the base model has no seed


def _pairs(rows: list[dict], reference: str, first_ratio: float) -> pd.DataFrame:
    from .evaluate import mcnemar_exact, paired_permutation

    by = {(r["condition"], r["seed"], r["eval_set"]): r["gens"] for r in rows if r["seed"] is not None}
    pairs = []

    def against(condition: str) -> str:
        method, ratio = parse_label(condition)
        return label(reference, first_ratio if method in CONTROLS else ratio)

    for (condition, seed, eval_set), gens in by.items():
        ref = against(condition)
        if condition == ref or (ref, seed, eval_set) not in by:
            continue
        both = gens.merge(by[ref, seed, eval_set], on="example_id", suffixes=("", "_ref"))
        pairs.append({"method": parse_label(condition)[0], "keep_ratio": parse_label(condition)[1], "reference": ref,
                      "seed": seed, "eval_set": eval_set, "test": "mcnemar",
                      "accuracy": float(both.correct.mean()), "reference_accuracy": float(both.correct_ref.mean()),
                      **mcnemar_exact(list(both.correct), list(both.correct_ref))})
    for condition, eval_set in dict.fromkeys((c, e) for c, _, e in by):
        ref = against(condition)
        seeds = sorted(s for c, s, e in by if (c, e) == (condition, eval_set) and (ref, s, e) in by)
        if condition == ref or len(seeds) < 2:
            continue
        both = pd.concat([by[condition, s, eval_set].merge(by[ref, s, eval_set], on="example_id",
                                                            suffixes=("", "_ref")) for s in seeds])
        mean = both.groupby("example_id")[["correct", "correct_ref"]].mean()  # per problem, over seeds
        test = paired_permutation(list(mean.correct), list(mean.correct_ref))
        pairs.append({"method": parse_label(condition)[0], "keep_ratio": parse_label(condition)[1], "reference": ref,
                      "seed": None, "eval_set": eval_set, "test": "sign-flip over seeds " + ",".join(map(str, seeds)),
                      "accuracy": float(mean.correct.mean()), "reference_accuracy": float(mean.correct_ref.mean()),
                      "n": test["n"], "p_value": test["p_value"]})
    columns = ["method", "keep_ratio", "reference", "seed", "eval_set", "test", "accuracy", "reference_accuracy",
               "n", "a_only", "b_only", "p_value"]
    return pd.DataFrame(pairs, columns=columns).astype({"seed": "Int64"})
