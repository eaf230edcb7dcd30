"""The distillation stage: a student per condition and seed, each evaluated on every eval set.

``distill(runs, out, config)`` writes, resumably (a finished student, generation file or drift is
never redone; a killed training resumes from its last checkpoint)::

    OUT/distill.json                                the config and the runs (a resume must match, but may
                                                    add seeds and runs, which adds students)
    OUT/train/CONDITION.parquet                     training sets (example_id, question, reasoning, answer)
    OUT/students/CONDITION-sSEED/final/             trained students (safetensors)
    OUT/students/CONDITION-sSEED/train.json         seconds, steps, final loss
    OUT/students/CONDITION-sSEED/drift.json         KL drift from the base model
    OUT/generations/CONDITION-sSEED.EVAL.parquet    per problem: text, n_tokens, seconds, predicted, gold, correct
    OUT/results.csv, OUT/pairs.csv, OUT/accuracy_vs_tokens.{png,pdf}
                                                    of the students finished so far (rewritten
                                                    after each one, and first when a run resumes)

The untrained student is evaluated too, as condition ``base``. Paired tests set each condition
beside the reference (``greedy`` when a run has that name, else the first run) on the same
problems: exact McNemar per seed, and where both have several seeds, a sign-flip test of the
per-problem accuracy averaged over their shared seeds (``seed`` empty).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..errors import RunError
from ..ops import progress_bar
from ..store import StageStore, write_table, write_text
from .config import DistillConfig
from .data import CONTROLS, training_sets

if TYPE_CHECKING:
    from ..cluster import RayOptions

BASE = "base"
SEED_SETTINGS = ("seeds", "condition_seeds")  # may grow on resume: a student depends on its seed alone


def _grow_runs(out: Path, given: dict[str, str], sets: dict[str, pd.DataFrame]) -> None:
    """A resumed run may add runs (conditions), not drop or move one, and no condition's training
    set may change (a new run that lacks some problems would change every set); the record then
    lists the added runs too."""
    path = out / "distill.json"
    record = json.loads(path.read_text())
    moved = {k: v for k, v in record["runs"].items() if given.get(k) != v}
    if moved:
        name, run = next(iter(moved.items()))
        raise RunError(f"{out} was made with run {name}={run}: give every run it was made with (runs may be added)")
    for name, rows in sets.items():
        made = out / "train" / f"{name}.parquet"
        if made.exists() and not pd.read_parquet(made).astype(str).equals(rows.astype(str).reset_index(drop=True)):
            raise RunError(f"{out}: the training set of {name} would change (the runs now share other problems): "
                           "use another --out")
    if set(given) - set(record["runs"]):
        write_text(json.dumps({**record, "runs": given}, indent=2, sort_keys=True), path)


def _eval_problems(config: DistillConfig, train_questions: set[str]) -> dict[str, list]:
    """Each eval set's problems, with every problem a training set holds left out."""
    from ..data import is_generated, load_examples

    out = {}
    for spec in config.eval_sets:
        pool = load_examples(spec.source, 2 * spec.limit if is_generated(spec.source) else None, spec.seed)
        kept = [e for e in pool if e.question not in train_questions][: spec.limit]
        if not kept:
            raise RunError(f"eval set {spec.name}: every problem of {spec.source} is in a training set")
        out[spec.name] = kept
    return out


DRIFT_LAYOUT = "render"  # drift.json before this key laid texts out unlike training: measured again


def _finished(path: Path) -> bool:
    """Written, and for drift measured the current way."""
    if path.name == "drift.json":
        return path.exists() and json.loads(path.read_text()).get("layout") == DRIFT_LAYOUT
    return path.exists()


def _label(name: str, seed: int | None) -> str:
    return BASE if seed is None else f"{name}-s{seed}"


def _files(out: Path, label: str, config: DistillConfig) -> list[Path]:
    """The files a finished student leaves (base: its generations only)."""
    folder = out / "students" / label
    mine = [] if label == BASE else [folder / "train.json", folder / "drift.json"]
    return mine + [out / "generations" / f"{label}.{spec.name}.parquet" for spec in config.eval_sets]


def _done(out: Path, student: tuple[str, int | None], config: DistillConfig) -> bool:
    """Whether every file of ``student`` is written (and measured the current way)."""
    return all(_finished(p) for p in _files(out, _label(*student), config))


def _urgency(config: DistillConfig, student: tuple[str, int | None]) -> tuple[int, bool]:
    """Work order: the base model, then every condition's first seed (controls first), then second
    seeds..., so a run stopped early has a whole comparison."""
    name, seed = student
    return (-1, False) if seed is None else (config.seeds_of(name).index(seed), name not in CONTROLS)


def _student(base, item: tuple[str, int | None], *, sets: dict, problems: dict, held_out: list, config: DistillConfig,
             out: Path, show_progress: bool = False) -> None:
    """Train one student (unless it is the base model), measure its drift, generate on every eval set;
    each file is written once, so a killed student resumes (a Ray worker runs this too)."""
    from ..models import load_model
    from .evaluate import answers_match, extract_answer, generate, kl_drift
    from .train import FINAL, train_student

    name, seed = item
    folder = out / "students" / _label(name, seed)
    student = base
    if seed is not None:
        if not (folder / "train.json").exists():  # written after the student is: a kill between resumes
            write_text(json.dumps(train_student(sets[name], folder, config, seed, show_progress), indent=1),
                       folder / "train.json")
        student = load_model(str(folder / FINAL), base.device.type)
        if not _finished(folder / "drift.json"):
            write_text(json.dumps({"kl_drift": kl_drift(base, student, held_out), "layout": DRIFT_LAYOUT}),
                       folder / "drift.json")
    for spec in config.eval_sets:
        path = out / "generations" / f"{_label(name, seed)}.{spec.name}.parquet"
        if path.exists():
            continue
        outputs = generate(student, [e.question for e in problems[spec.name]], config.max_new_tokens,
                           config.eval_batch, spec.style, show_progress=show_progress)
        predicted = [extract_answer(o["text"]) for o in outputs]
        write_table(pd.DataFrame({
            "example_id": [e.id for e in problems[spec.name]], "text": [o["text"] for o in outputs],
            "n_tokens": [o["n_tokens"] for o in outputs], "seconds": [o["seconds"] for o in outputs],
            "predicted": predicted,
            "gold": [e.answer for e in problems[spec.name]],
            "correct": [answers_match(p, e.answer) for p, e in zip(predicted, problems[spec.name])]}), path)


def distill(runs: Mapping[str, str | Path], out: str | Path, config: DistillConfig, show_progress: bool = True,
            ray: RayOptions | None = None) -> dict[str, pd.DataFrame]:
    """Train and evaluate every condition (see the module docstring); returns results and pairs.

    With ``ray``, each student (the base model too) is a task for the workers of a Ray cluster (one
    GPU each, or ``ray.cpus`` CPUs), which write its files into ``out``: it must be on storage every
    node sees. This process then reads them and writes the summaries.
    """
    from ..models import load_model

    if not config.eval_sets:
        raise ValueError("give at least one eval set")
    out = Path(out).resolve()  # absolute: Ray workers have another working directory
    sets = training_sets(runs, config.keep_ratio, config.train_limit)  # every run checked before any work
    problems = _eval_problems(config, set(sets["full"].question))
    unknown = sorted({name for name, _ in config.condition_seeds} - set(sets))
    if unknown:
        raise ValueError(f"seeds for {', '.join(unknown)}, which is not a condition: use one of {', '.join(sets)}")
    given = {k: str(Path(v).resolve()) for k, v in runs.items()}
    StageStore(out, "distill", ()).check_config({**config.recorded(), "runs": given}, ignore=SEED_SETTINGS + ("runs",))
    _grow_runs(out, given, sets)
    for name, rows in sets.items():
        if not (out / "train" / f"{name}.parquet").exists():
            write_table(rows, out / "train" / f"{name}.parquet")
    if ray is None:
        base = load_model(config.student)
    else:  # the workers hold the weights; here only the tokenizer counts tokens
        from ..cluster import connect

        base = load_model(config.student, connect(ray), weights=False)
    tokens = {name: [len(base.tokenizer(r, add_special_tokens=False)["input_ids"]) if r else 0 for r in rows.reasoning]
              for name, rows in sets.items()}
    held_out = problems[config.eval_sets[0].name][: config.kl_texts]  # drift is read on these
    students = [(BASE, None)] + [(name, seed) for name in sets for seed in config.seeds_of(name)]
    todo = sorted((s for s in students if not _done(out, s, config)), key=partial(_urgency, config))
    task = partial(_student, sets=sets, problems=problems, held_out=held_out, config=config, out=out)
    report = partial(_report, students=students, out=out, config=config, sets=sets, tokens=tokens,
                     reference=next(iter(runs)) if "greedy" not in runs else "greedy")
    if len(todo) < len(students):  # a resumed run: the comparison so far first, as this version summarises it
        report()
    if ray is not None:
        from ..cluster import run_examples, spec_of

        run_examples(ray, spec_of(base, ray), task, [(_label(*s), s) for s in todo], desc="students",
                     show_progress=show_progress)
    else:
        for item in progress_bar(todo, desc="students", unit="student", disable=not show_progress):
            task(base, item, show_progress=show_progress)
            report()  # the comparison so far: a run stopped between students leaves it readable
    return report()


def _report(*, students: list, out: Path, config: DistillConfig, sets: dict, tokens: dict,
            reference: str) -> dict[str, pd.DataFrame]:
    """Write results.csv, pairs.csv and the figure for the finished ``students``; returns the tables."""
    from ..figures import distill_figure, save_figure
    from ..numbers import broken_number_share, problem_texts
    from .evaluate import hedge_rate

    said = problem_texts(sets["full"])
    train_stats = {name: {"train_hedge_rate": hedge_rate(list(chains.reasoning), tokens[name]),
                          "train_broken_numbers": broken_number_share(list(chains.reasoning),
                                                                      [said[i] for i in chains.example_id])}
                   for name, chains in sets.items()}
    rows = []
    for name, seed in students:
        if not _done(out, (name, seed), config):
            continue
        label = _label(name, seed)
        folder = out / "students" / label
        trained = {"seconds": 0.0} if seed is None else json.loads((folder / "train.json").read_text())
        drift = 0.0 if seed is None else json.loads((folder / "drift.json").read_text())["kl_drift"]
        train = "full" if seed is None else name
        for spec in config.eval_sets:
            rows.append({"method": name, "seed": seed, "eval_set": spec.name,
                         "gens": pd.read_parquet(out / "generations" / f"{label}.{spec.name}.parquet"),
                         "mean_train_reasoning_tokens": 0.0 if seed is None else float(pd.Series(tokens[name]).mean()),
                         **train_stats[train], "kl_drift": drift, "train_seconds": trained["seconds"]})
    results, pairs = _summaries(rows, reference)
    write_text(results.to_csv(index=False), out / "results.csv")
    write_text(pairs.to_csv(index=False), out / "pairs.csv")
    save_figure(distill_figure(results), out, "accuracy_vs_tokens")
    return {"results": results, "pairs": pairs}


def _summaries(rows: list[dict], reference: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from .evaluate import hedge_rate, mcnemar_exact, paired_permutation, wilson_interval

    results = []
    for r in rows:
        gens = r["gens"]
        low, high = wilson_interval(int(gens.correct.sum()), len(gens))
        results.append({"method": r["method"], "seed": r["seed"], "eval_set": r["eval_set"], "n_eval": len(gens),
                        "accuracy": float(gens.correct.mean()), "ci_low": low, "ci_high": high,
                        "mean_train_reasoning_tokens": r["mean_train_reasoning_tokens"],
                        "mean_output_tokens": float(gens.n_tokens.mean()),
                        "hedge_rate": hedge_rate(list(gens.text), list(gens.n_tokens)),
                        "train_hedge_rate": r["train_hedge_rate"], "train_broken_numbers": r["train_broken_numbers"],
                        "kl_drift": r["kl_drift"],
                        "train_seconds": r["train_seconds"],  # generations written before timing: nan
                        "eval_seconds": float(gens.seconds.sum()) if "seconds" in gens else math.nan})
    results = pd.DataFrame(results).astype({"seed": "Int64"})  # the base model has no seed
    by = {(r["method"], r["seed"], r["eval_set"]): r["gens"] for r in rows}
    pairs = []
    for (method, seed, eval_set), gens in by.items():
        ref = by.get((reference, seed, eval_set))
        if method == reference or ref is None:
            continue
        both = gens.merge(ref, on="example_id", suffixes=("", "_ref"))
        pairs.append({"method": method, "reference": reference, "seed": seed, "eval_set": eval_set, "test": "mcnemar",
                      "accuracy": float(both.correct.mean()), "reference_accuracy": float(both.correct_ref.mean()),
                      **mcnemar_exact(list(both.correct), list(both.correct_ref))})
    for method, eval_set in dict.fromkeys((m, e) for m, _, e in by if m != reference):
        seeds = sorted(s for m, s, e in by if (m, e) == (method, eval_set) and (reference, s, e) in by)
        if len(seeds) < 2:
            continue
        both = pd.concat([by[method, s, eval_set].merge(by[reference, s, eval_set], on="example_id",
                                                         suffixes=("", "_ref")) for s in seeds])
        mean = both.groupby("example_id")[["correct", "correct_ref"]].mean()  # per problem, over seeds
        test = paired_permutation(list(mean.correct), list(mean.correct_ref))
        pairs.append({"method": method, "reference": reference, "seed": None, "eval_set": eval_set,
                      "test": "sign-flip over seeds " + ",".join(map(str, seeds)),
                      "accuracy": float(mean.correct.mean()), "reference_accuracy": float(mean.correct_ref.mean()),
                      "n": test["n"], "p_value": test["p_value"]})
    return results, pd.DataFrame(pairs).astype({"seed": "Int64"}) if pairs else pd.DataFrame(pairs)
