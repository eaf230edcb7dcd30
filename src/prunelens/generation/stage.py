"""``generate_chains``: a teacher writes its own chains, rejection-sampled as published.

For each problem, up to ``samples`` replies are drawn (``round_size`` at a time); each is split at
the model's own answer marker and checked against the gold answer (``prunelens.answers``); the
first correct one is kept. Writes, into ``OUT``::

    OUT/generate.json       the settings, the model, the data source (a resume with others is refused)
    OUT/attempts.parquet    every sample: text, tokens, stopped, split rule, predicted answer,
                            verdict (correct, wrong, unsplit: no answer marker), kept
    OUT/problems.parquet    every problem: gold answer, samples drawn, attempts to the kept one,
                            solved (False: no correct sample in ``samples``), the kept chain
    OUT/chains.jsonl        the kept chains, as ``prune --data jsonl:OUT/chains.jsonl`` reads them:
                            id, question (as the teacher was asked it, so pruning scores the chain
                            under the prompt it was written under), reasoning, answer, and the
                            teacher, sample, attempts, split rule, gold answer and source question

Problems are resumed one by one from ``OUT/parts/generate``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..answers import answers_match, split_reply
from ..errors import ExampleError, SettingsError
from ..ops import progress_bar
from ..store import StageStore, atomic_write
from .config import GenerateConfig
from .sampler import VllmSampler, asked, check_backend, generate

if TYPE_CHECKING:
    from ..cluster import RayOptions
    from ..data import Example
    from ..models import PrunerModel

STAGE, TABLES = "generate", ("attempts", "problems")
CHAINS = "chains.jsonl"
_VLLM: dict[str, VllmSampler] = {}  # one vLLM engine per model and process


def _round_seed(seed: int, example_id: str, drawn: int) -> int:
    """The seed of the round of ``example_id`` that starts after ``drawn`` samples."""
    return zlib.crc32(f"{seed}/{example_id}/{drawn}".encode())


def _thinks(tokenizer, config: GenerateConfig) -> bool:
    """Does the prompt open a think block (so a reply splits only at its close)?"""
    from ..layout import template_parts

    return config.style != "plain" and template_parts(tokenizer, asked("", config.style), config.layout).layout == "think"


def _sample(model, question: str, config: GenerateConfig, k: int, seed: int) -> list[dict]:
    if config.backend == "vllm":
        sampler = _VLLM.setdefault(model.name, VllmSampler(model))
        return sampler([question], config.max_new_tokens, samples=k, temperature=config.temperature, seed=seed,
                       style=config.style, layout=config.layout)
    return generate(model, [question], config.max_new_tokens, 1, config.style, show_progress=False, samples=k,
                    temperature=config.temperature, seed=seed, layout=config.layout)


def solve(model, example: Example, config: GenerateConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sample ``example`` until a correct reply or ``config.samples``: its attempts and problem rows."""
    think = _thinks(model.tokenizer, config)
    rows: list[dict] = []
    kept: dict | None = None
    while len(rows) < config.samples and kept is None:
        k = min(config.round_size, config.samples - len(rows))
        for reply in _sample(model, example.question, config, k, _round_seed(config.seed, example.id, len(rows))):
            split = split_reply(reply["text"], think=think)
            verdict = "unsplit" if split.rule is None else (
                "correct" if answers_match(split.answer, example.answer) else "wrong")
            row = {"example_id": example.id, "sample": len(rows), **reply, "rule": split.rule,
                   "predicted": split.answer, "verdict": verdict, "kept": False}
            if verdict == "correct" and kept is None:
                row["kept"] = True
                kept = {**row, "reasoning": split.reasoning}
            rows.append(row)
    problem = {"example_id": example.id, "question": asked(example.question, config.style),
               "source_question": example.question, "gold": example.answer, "samples": len(rows),
               "solved": kept is not None, "attempts": kept["sample"] + 1 if kept else None,
               "reasoning": kept["reasoning"] if kept else None, "answer": kept["predicted"] if kept else None,
               "rule": kept["rule"] if kept else None}
    return pd.DataFrame(rows), pd.DataFrame([problem]).astype({"attempts": "Int64"})


def write_chains(out: str | Path, teacher: str) -> Path:
    """``OUT/chains.jsonl`` from ``OUT/problems.parquet``: one line per solved problem, in order."""
    out = Path(out)
    problems = pd.read_parquet(out / "problems.parquet")
    lines = [json.dumps({"id": p.example_id, "question": p.question, "reasoning": p.reasoning, "answer": p.answer,
                         "teacher": teacher, "sample": int(p.attempts) - 1, "attempts": int(p.attempts),
                         "split": p.rule, "gold": p.gold, "source_question": p.source_question}, ensure_ascii=False)
             for p in problems[problems.solved].itertuples()]
    return atomic_write(out / CHAINS, lambda t: t.write_text("".join(line + "\n" for line in lines)))


def check_settings(tokenizer, config: GenerateConfig, device: str | None = None) -> None:
    """One-line errors before any weight loads: the backend, and a chat prompt for a model without a template."""
    check_backend(config.backend, device)
    if config.style != "plain" and not getattr(tokenizer, "chat_template", None):
        raise SettingsError(f"the model has no chat template, so no --style {config.style} prompt: use --style plain")
    if config.style != "plain":
        _thinks(tokenizer, config)  # a --layout think the template cannot give fails here


def _write_parts(out: Path, example_id: str, attempts: pd.DataFrame, problem: pd.DataFrame) -> None:
    StageStore(out, STAGE, TABLES).write(example_id, {"attempts": attempts, "problems": problem})


def _task(model, example: Example, *, config: GenerateConfig, out: Path) -> None:
    """Solve one problem and write its parts (what a Ray worker runs)."""
    _write_parts(out, example.id, *solve(model, example, config))


def generate_into(model: PrunerModel, problems: Sequence[Example], out: str | Path, config: GenerateConfig, *,
                  data: str | None = None, ray: RayOptions | None = None, skip_bad: bool = False,
                  show_progress: bool = True) -> dict[str, Any]:
    """Rejection-sample every problem of ``problems`` into ``out`` (see the module docstring), resuming.

    ``model``: the teacher (with weights, or shape only with ``ray``, whose workers load it);
    ``data``: the source as recorded. Returns ``done``, ``resumed``, ``solved``, ``problems``,
    ``samples``, ``skipped`` and the written ``paths``.
    """
    out = Path(out).resolve()  # absolute: Ray workers have another working directory
    check_settings(model.tokenizer, config, model.device.type)
    store = StageStore(out, STAGE, TABLES)
    store.check_config({**config.to_dict(), "model": model.name, "data": data,
                        "dtype": str(model.dtype).removeprefix("torch.")})
    finished = store.done()
    todo = [(e.id, e) for e in problems if e.id not in finished]
    skipped: list[str] = []
    if ray is not None:
        from ..cluster import run_examples, spec_of

        task = partial(_task, config=config, out=out)
        skipped = run_examples(ray, spec_of(model, ray), task, todo, bad=(ExampleError,), skip_bad=skip_bad,
                               desc="generate", show_progress=show_progress)["skipped"]
    else:
        solved = 0
        bar = progress_bar(todo, desc="generate", unit="problem", disable=not show_progress)
        for n, (_, example) in enumerate(bar, start=1):
            try:
                attempts, problem = solve(model, example, config)
            except ExampleError as err:
                if not skip_bad:
                    raise
                skipped.append(str(err))
                continue
            _write_parts(out, example.id, attempts, problem)
            solved += bool(problem.solved.iloc[0])
            bar.set_postfix(accepted=f"{solved}/{n}")
    written = store.merge()
    if "problems" not in written:
        raise SettingsError(f"no problem was done into {out}: nothing written")
    chains = write_chains(out, model.name)
    table = pd.read_parquet(written["problems"])
    return {"done": len(todo) - len(skipped), "resumed": len(finished), "problems": len(table),
            "solved": int(table.solved.sum()), "samples": int(table.samples.sum()), "skipped": skipped,
            "paths": {**written, "chains": chains}}


def generate_chains(model: PrunerModel | str, data: str | Iterable[Example], out: str | Path,
                    config: GenerateConfig | None = None, *, limit: int | None = None, exclude: Sequence[str] = (),
                    data_seed: int = 0, ray: RayOptions | None = None, threads: int | None = None,
                    device: str | None = None, attention: str | None = None, skip_bad: bool = False,
                    show_progress: bool = True, **settings: Any) -> dict[str, Any]:
    """The teacher ``model`` (loaded, or a name: loaded here once every check passed) writes its own
    chains for ``data`` (a source as ``load_examples`` reads it, gold answers needed and reasoning
    not, or Example objects) into ``out``: the first ``limit`` problems whose ids no run or chain
    file of ``exclude`` holds. ``config`` or ``settings`` (``GenerateConfig``'s fields);
    ``data_seed``: for generated sources. Returns ``generate_into``'s summary."""
    from ..data import load_examples, source_id
    from ..models import load_model, tokenizer_of
    from ..ops import set_threads

    if config is not None and settings:
        raise SettingsError(f"give a config or settings, not both: {sorted(settings)}")
    config = config if config is not None else GenerateConfig(**settings)
    check_backend(config.backend, device)
    if Path(out).exists() and not Path(out).is_dir():
        raise SettingsError(f"--out {out} is a file, not a directory")
    if limit is not None and limit < 1:
        raise SettingsError(f"--limit {limit}: give a positive number of problems")
    excluded = exclude_ids(exclude)
    skipped: list[str] = []
    if isinstance(data, str):
        pool = None if limit is None else limit + len(excluded)
        problems = load_examples(data, pool, data_seed, skip_bad, skipped, reasoning=False)
    else:
        problems = list(data)
    problems = [p for p in problems if p.id not in excluded][:limit]
    if not problems:
        raise SettingsError(f"every problem of {data if isinstance(data, str) else 'the examples'} is excluded: "
                            "nothing to do, nothing written")
    if isinstance(model, str):
        check_settings(tokenizer_of(model), config, device)
        if ray is None:
            set_threads(threads)
            model = load_model(model, device, attention=attention)
        else:
            from ..cluster import connect

            model = load_model(model, connect(ray), attention=attention, weights=False)
    summary = generate_into(model, problems, out, config, data=source_id(data) if isinstance(data, str) else None,
                            ray=ray, skip_bad=skip_bad, show_progress=show_progress)
    summary["skipped"] = skipped + summary["skipped"]
    return summary


def exclude_ids(paths: Iterable[str | Path]) -> set[str]:
    """The example ids that runs (directories with ``examples.parquet``) or chain files (``.jsonl``) hold."""
    ids: set[str] = set()
    for path in map(Path, paths):
        if path.is_dir() and (path / "examples.parquet").exists():
            ids |= set(pd.read_parquet(path / "examples.parquet", columns=["example_id"]).example_id)
        elif path.is_file() and path.suffix == ".jsonl":
            ids |= {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}
        else:
            raise SettingsError(f"--exclude {path}: neither a run directory nor a .jsonl chain file")
    return ids
