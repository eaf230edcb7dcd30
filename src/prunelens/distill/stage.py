"""The distillation stage: a student per condition and seed, each evaluated on every eval set.

``distill(runs, out, config)`` writes, resumably (a finished student, generation file or drift is
never redone; a killed training resumes from its last checkpoint)::

    OUT/distill.json                                the config and the runs, relative to OUT (a resume must
                                                    match, but may add seeds and runs, which adds students;
                                                    it records the seeds asked for last)
    OUT/train/CONDITION.parquet                     training sets (example_id, question, reasoning, answer,
                                                    student_tokens: its reasoning in the student's tokens)
    OUT/eval/EVAL.parquet, OUT/eval.json            each eval set's problems (id, question, answer, problem
                                                    key) and how many twins of training problems and
                                                    repeats were dropped from it
    OUT/students/CONDITION-sSEED/final/             trained students (safetensors; not evidence: large)
    OUT/students/CONDITION-sSEED/train.json         steps, epochs, seconds, the loss curve
    OUT/students/CONDITION-sSEED/drift.json         KL drift from the base model
    OUT/generations/CONDITION-sSEED.EVAL.parquet    per problem: text, n_tokens, seconds, predicted, gold, correct
    OUT/results.csv, OUT/pairs.csv, OUT/comparisons.csv (with OUT/plan.json), OUT/accuracy_vs_tokens.{png,pdf}
                                                    of the students finished so far (``report``: from
                                                    these files alone, rewritten after each student)

Conditions are ``METHOD@RATIO`` (``config.conditions``) and the controls ``full`` and
``answer-only``; the untrained student is evaluated too, as ``base``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..errors import RunError, SettingsError
from ..ops import progress_bar, set_threads
from ..store import StageStore, write_table, write_text
from .config import CONTROLS, DistillConfig, conditions, parse_label
from .data import COLUMNS, student_tokens, training_sets
from .report import BASE, DRIFT_LAYOUT, done, generations_path, student_label, write_report

if TYPE_CHECKING:
    from ..cluster import RayOptions

SEED_SETTINGS = ("seeds", "condition_seeds")  # may grow on resume: a student depends on its seed alone


def _relative(run: str | Path, out: Path) -> str:
    """A run's path as ``distill.json`` records it: relative to OUT, so a moved or cloned repository resumes."""
    return os.path.relpath(Path(run).resolve(), out)


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
        if made.exists() and not pd.read_parquet(made)[COLUMNS].astype(str).equals(
                rows.astype(str).reset_index(drop=True)):
            raise RunError(f"{out}: the training set of {name} would change (the runs now share other problems): "
                           "use another --out")
    if set(given) - set(record["runs"]):
        write_text(json.dumps({**record, "runs": given}, indent=2, sort_keys=True), path)


def _record_seeds(out: Path, config: DistillConfig) -> None:
    """A resumed run may ask for other seeds; the record then lists the seeds asked for last, which the
    report reads as each condition's planned seeds."""
    path = out / "distill.json"
    record, asked = json.loads(path.read_text()), config.recorded()
    if any(record.get(key) != asked[key] for key in SEED_SETTINGS):
        write_text(json.dumps({**record, **{key: asked[key] for key in SEED_SETTINGS}}, indent=2, sort_keys=True), path)


def _eval_problems(config: DistillConfig, train: pd.DataFrame, out: Path) -> dict[str, list]:
    """Each eval set's problems, clean of training problems and of repeats (``data.drop_twins``); their
    ids and what was dropped are written to ``OUT/eval``."""
    from ..data import drop_twins, is_generated, load_examples, problem_key

    seen = list(zip(train.example_id, train.question))
    out_sets, counts = {}, {}
    for spec in config.eval_sets:
        pool = load_examples(spec.source, 4 * spec.limit if is_generated(spec.source) else None, spec.seed)
        kept, dropped = drop_twins(pool, seen)
        if not kept:
            raise RunError(f"eval set {spec.name}: every problem of {spec.source} is a training problem or its twin")
        out_sets[spec.name] = kept[: spec.limit]
        counts[spec.name] = {"source": spec.source, "candidates_read": len(pool), "kept": len(out_sets[spec.name]),
                             "twins_of_training_problems": dropped["seen"], "repeats": dropped["repeated"]}
        path = out / "eval" / f"{spec.name}.parquet"
        if not path.exists():
            write_table(pd.DataFrame({"example_id": [e.id for e in out_sets[spec.name]],
                                      "question": [e.question for e in out_sets[spec.name]],
                                      "answer": [e.answer for e in out_sets[spec.name]],
                                      "problem_key": [problem_key(e.id, e.question) for e in out_sets[spec.name]]}),
                        path)
    write_text(json.dumps(counts, indent=1), out / "eval.json")
    return out_sets


def _urgency(config: DistillConfig, order: list[str], student: tuple[str, int | None]) -> tuple:
    """Work order: the base model; then the first keep ratio's conditions, with the controls, seed by
    seed (controls first); then the next keep ratio's ... (ratios of ``NAME@RATIO`` runs not among
    ``keep_ratios`` last), so a run stopped early has a whole comparison at the first keep ratio."""
    name, seed = student
    if seed is None:
        return (-1,)
    method, ratio = parse_label(name)
    ratios = list(config.keep_ratios)
    rank = 0 if method in CONTROLS else ratios.index(ratio) if ratio in ratios else len(ratios)
    return (rank, config.seeds_of(name).index(seed), method not in CONTROLS, order.index(name))


def _student(base, item: tuple[str, int | None], *, sets: dict, problems: dict, held_out: list, config: DistillConfig,
             out: Path, show_progress: bool = False) -> None:
    """Train one student (unless it is the base model), measure its drift, generate on every eval set;
    each file is written once, so a killed student resumes (a Ray worker runs this too)."""
    from ..models import load_model
    from .evaluate import answer_problems, kl_drift
    from .report import finished
    from .train import FINAL, train_student

    name, seed = item
    label = student_label(name, seed)
    folder = out / "students" / label
    missing = [(spec, path) for spec in config.eval_sets
               if not (path := generations_path(out, label, spec.name)).exists()]
    student = base
    if seed is not None and (missing or not finished(folder / "drift.json")):
        # train.json is written after the weights, which are not committed: a clone that resumes a student
        # whose evaluation was cut off trains it again, with the same seed and steps
        if not (folder / "train.json").exists() or not (folder / FINAL).exists():
            write_text(json.dumps(train_student(sets[name], folder, config, seed, show_progress), indent=1),
                       folder / "train.json")
        student = load_model(str(folder / FINAL), base.device.type)
        if not finished(folder / "drift.json"):
            write_text(json.dumps({"kl_drift": kl_drift(base, student, held_out), "layout": DRIFT_LAYOUT}),
                       folder / "drift.json")
    for spec, path in missing:
        write_table(answer_problems(student, problems[spec.name], spec.name, spec.style, config.max_new_tokens,
                                    config.eval_batch, show_progress), path)


def distill(runs: Mapping[str, str | Path], out: str | Path, config: DistillConfig, show_progress: bool = True,
            ray: RayOptions | None = None, threads: int | None = None) -> dict[str, pd.DataFrame]:
    """Train and evaluate every condition (see the module docstring); returns the report's tables.

    ``runs``: ``{NAME: RUN}`` (read at every keep ratio of ``config``) or ``{NAME@RATIO: RUN}`` (at that
    ratio only). With ``ray``, each student (the base model too) is a task for the workers of a Ray
    cluster (one GPU each, or ``ray.cpus`` CPUs), which write its files into ``out``: it must be on
    storage every node sees. This process then reads them and writes the summaries. ``threads``:
    torch's CPU threads here (without ``ray``).
    """
    from ..models import load_model

    if not config.eval_sets:
        raise SettingsError("give at least one eval set")
    if Path(out).exists() and not Path(out).is_dir():
        raise SettingsError(f"--out {out} is a file, not a directory")
    out = Path(out).resolve()  # absolute: Ray workers have another working directory
    sets = training_sets(conditions(runs, config.keep_ratios), config.train_limit)  # every run checked first
    unknown = config.unknown_seed_keys(set(sets))
    if unknown:
        raise SettingsError(f"seeds for {', '.join(unknown)}, which is not a condition: use one of {', '.join(sets)}")
    given = {k: _relative(v, out) for k, v in runs.items()}
    StageStore(out, "distill", ()).check_config({**config.recorded(), "runs": given}, ignore=SEED_SETTINGS + ("runs",),
                                                defaults={"cpu_bf16": False})
    _grow_runs(out, given, sets)
    _record_seeds(out, config)
    problems = _eval_problems(config, sets["full"], out)
    if ray is None:
        set_threads(threads)
        base = load_model(config.student)
    else:  # the workers hold the weights; here only the tokenizer counts tokens
        from ..cluster import connect

        base = load_model(config.student, connect(ray), weights=False)
    for name, rows in sets.items():
        if not (out / "train" / f"{name}.parquet").exists():
            write_table(rows.assign(student_tokens=student_tokens(base.tokenizer, rows)),
                        out / "train" / f"{name}.parquet")
    held_out = problems[config.eval_sets[0].name][: config.kl_texts]  # drift is read on these
    students = [(BASE, None)] + [(name, seed) for name in sets for seed in config.seeds_of(name)]
    todo = sorted((s for s in students if not done(out, student_label(*s), config)),
                  key=partial(_urgency, config, list(sets)))
    task = partial(_student, sets=sets, problems=problems, held_out=held_out, config=config, out=out)
    if len(todo) < len(students):  # a resumed run: the comparison so far first, as this version summarises it
        write_report(out)
    if ray is not None:
        from ..cluster import run_examples, spec_of

        run_examples(ray, spec_of(base, ray), task, [(student_label(*s), s) for s in todo], desc="students",
                     show_progress=show_progress)
    else:
        for item in progress_bar(todo, desc="students", unit="student", disable=not show_progress):
            task(base, item, show_progress=show_progress)
            write_report(out)  # the comparison so far: a run stopped between students leaves it readable
    return write_report(out)
