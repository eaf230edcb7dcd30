"""Load reasoning examples (id, question, reasoning, answer) from a source string.

Sources:
- ``gsm-symbolic``: GSM-Symbolic problems generated offline by ``reasoning-gym`` (seeded);
  ``gsm-symbolic:templates=4,10-12`` only those of some problem templates (for in-distribution
  training and evaluation), ``gsm-symbolic:other-templates=...`` all but those (held-out templates).
- ``gsm8k:PATH``: GSM8K JSONL (``question``, ``answer`` = chain + ``#### final``); ``<<...>>`` removed.
- ``jsonl:PATH``: one object per line with ``id``, ``question``, ``reasoning``, ``answer``, verbatim.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from .errors import DataError  # noqa: F401  (re-exported: raised here, defined with the other user errors)

CALCULATOR = re.compile(r"<<[^<>]*>>")
FINAL_MARK = "####"


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    reasoning: str
    answer: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def content_hash(self) -> str:
        """A hash of the question, reasoning and answer: tells two examples with one id apart."""
        text = json.dumps([self.question, self.reasoning, self.answer], ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_chain(text: str) -> tuple[str, str]:
    """Split ``chain #### final`` into (chain, final); raises ValueError without ``####``."""
    if FINAL_MARK not in text:
        raise ValueError(f"no '{FINAL_MARK}' before the final answer")
    chain, final = text.rsplit(FINAL_MARK, 1)
    return chain.strip(), final.strip()


def _templates(spec: str) -> tuple[set[int], bool]:
    """``templates=1,4-6`` (only these) or ``other-templates=...`` (all but these) -> (ids, keep)."""
    key, sep, value = spec.partition("=")
    if key not in ("templates", "other-templates") or not sep or not value:
        raise DataError(f"gsm-symbolic:{spec}: give gsm-symbolic:templates=IDS or gsm-symbolic:other-templates=IDS "
                        "(IDS like 4,10-12)")
    ids: set[int] = set()
    for part in value.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
            raise DataError(f"gsm-symbolic:{spec}: {part!r} is not a template id or range")
        ids.update(range(int(low), int(high if dash else low) + 1))
    return ids, key == "templates"


def _gsm_symbolic(limit: int | None, seed: int, spec: str = "") -> Iterator[Example]:
    """GSM-Symbolic problems ``gsm-symbolic-SEED-I`` (I: index in reasoning-gym's seeded stream),
    with ``spec`` only those of some templates (problem generators), or all but some."""
    import reasoning_gym
    from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import tasks_ok

    chosen = set(tasks_ok)
    if spec:
        ids, keep = _templates(spec)
        unknown = sorted(ids - chosen)
        if unknown:
            raise DataError(f"gsm-symbolic:{spec}: no template {unknown[0]} (there are {len(chosen)}: "
                            f"{min(chosen)}-{max(chosen)}, some missing)")
        chosen = chosen & ids if keep else chosen - ids
        if not chosen:
            raise DataError(f"gsm-symbolic:{spec}: that leaves no template")
    wanted = limit if limit is not None else 100
    start, size, found = 0, wanted, 0
    while True:  # a longer stream starts with the shorter one: grow it until enough problems match
        dataset = reasoning_gym.create_dataset("gsm_symbolic", size=size, seed=seed)
        for i in range(start, size):
            if dataset.task_indices[i] in chosen:
                entry = dataset[i]
                chain, final = split_chain(entry["metadata"]["answer_cot"])
                yield Example(f"gsm-symbolic-{seed}-{i}", entry["question"], chain, final)
                found += 1
                if found == wanted:
                    return
        start, size = size, 2 * size


def _gsm8k_record(obj: dict, lineno: int) -> Example:
    chain, final = split_chain(_text_field(obj, "answer"))
    chain = CALCULATOR.sub("", chain)
    if not chain.strip():
        raise ValueError("the chain is empty once calculator annotations <<...>> are removed")
    return Example(f"gsm8k-{lineno}", _text_field(obj, "question"), chain, final)


def _jsonl_record(obj: dict, lineno: int) -> Example:
    return Example(*(_text_field(obj, key) for key in ("id", "question", "reasoning", "answer")))


def _jsonl_problem(obj: dict, lineno: int) -> Example:
    """A problem to generate a chain for: id, question and gold answer; a reasoning is not needed."""
    if "answer" not in obj:
        raise ValueError("missing field 'answer' (the gold answer every sample is checked against)")
    return Example(_text_field(obj, "id"), _text_field(obj, "question"), "", _text_field(obj, "answer"))


def _text_field(obj: dict, key: str) -> str:
    if key not in obj:
        raise ValueError(f"missing field '{key}'")
    value = obj[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("id", "answer"):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"field '{key}' is {type(value).__name__}, not text")
    if not value.strip():
        raise ValueError(f"field '{key}' is empty")
    return value


def _read_jsonl(path: Path, parse, skip_bad: bool, report: list[str]) -> Iterator[Example]:
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    seen: set[str] = set()
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
                example = parse(obj, lineno)
                if example.id in seen:
                    raise ValueError(f"duplicate id '{example.id}'")
            except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
                reason = "undecodable bytes (not UTF-8)" if isinstance(err, UnicodeDecodeError) else (
                    f"malformed JSON ({err.msg})" if isinstance(err, json.JSONDecodeError) else str(err))
                message = f"{path}, line {lineno}: {reason}"
                if not skip_bad:
                    raise DataError(message) from None
                report.append(message)
                continue
            seen.add(example.id)
            yield example


SYMBOLIC_ID = re.compile(r"gsm-symbolic-(\d+)-(\d+)")
_STREAMS: dict[int, Any] = {}  # seed -> reasoning-gym's GSM-Symbolic dataset, the longest made so far


def _symbolic_problem(seed: int, index: int) -> tuple[int, dict]:
    """Template and variables of problem ``index`` of GSM-Symbolic's stream ``seed`` (a longer stream
    starts with the shorter one, so one stream per seed serves every index)."""
    stream = _STREAMS.get(seed)
    if stream is None or len(stream) <= index:
        import reasoning_gym

        stream = _STREAMS[seed] = reasoning_gym.create_dataset("gsm_symbolic", size=max(2 * index + 2, 1000), seed=seed)
    return int(stream.task_indices[index]), stream[index]["metadata"]["variables"]


def problem_key(example_id: str, question: str) -> str:
    """What makes two problems the same problem: for GSM-Symbolic, its template and the numbers
    filled in (names and objects aside, the same template with the same numbers has the same
    answer); for any other source, the question's words (case and white space aside)."""
    match = SYMBOLIC_ID.fullmatch(example_id)
    if match:
        template, variables = _symbolic_problem(int(match[1]), int(match[2]))
        numbers = sorted((k, v) for k, v in variables.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        return f"gsm-symbolic/t{template}/" + json.dumps(numbers)
    return "text/" + " ".join(question.lower().split())


def drop_twins(candidates: Iterable[Example], seen: Iterable[tuple[str, str]] = ()) -> tuple[list[Example], dict[str, int]]:
    """``candidates`` without the problems that ``seen`` (``(id, question)`` pairs: the training
    problems) holds, and without a second copy of one already kept (``problem_key`` decides what is
    the same problem). Returns the kept problems, in order, and how many were dropped as
    ``seen`` (twins of a seen problem) and as ``repeated`` (twins of an earlier candidate)."""
    known = {problem_key(i, q) for i, q in seen}
    kept, mine, dropped = [], set(), {"seen": 0, "repeated": 0}
    for example in candidates:
        key = problem_key(example.id, example.question)
        if key in known:
            dropped["seen"] += 1
        elif key in mine:
            dropped["repeated"] += 1
        else:
            mine.add(key)
            kept.append(example)
    return kept, dropped


def source_id(source: str) -> str:
    """A data source as a run records it: a generated source as it is; a file by its kind, name and the
    hash of its content (``gsm8k:train.jsonl#sha256=...``), so a run resumes wherever the file lies."""
    kind, _, rest = source.partition(":")
    if is_generated(source) or not rest:
        return source
    path = Path(rest).expanduser()
    if not path.is_file():
        return source
    return f"{kind}:{path.name}#sha256={hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def same_source(recorded: str | None, given: str | None) -> bool:
    """Does a run that recorded ``recorded`` come from ``given``? The same id, or a record of the form
    runs made before ids (``kind:/absolute/path``) of the same kind and file name whose content,
    where the file is still there, is the same."""
    if recorded == given or recorded is None or given is None:
        return recorded == given
    kind, _, rest = recorded.partition(":")
    if "#sha256=" in rest or not rest.startswith("/"):
        return False
    if Path(rest).is_file():
        return source_id(recorded) == given
    return given.startswith(f"{kind}:{Path(rest).name}#")


def is_generated(source: str) -> bool:
    """Whether ``source`` makes problems (any number of them) rather than reading a file."""
    return source.partition(":")[0] == "gsm-symbolic"


def load_examples(source: str = "gsm-symbolic", limit: int | None = None, seed: int = 0,
                  skip_bad: bool = False, skipped: list[str] | None = None, reasoning: bool = True) -> list[Example]:
    """Load up to ``limit`` examples from ``source``; bad lines raise DataError unless ``skip_bad``.

    With ``skip_bad``, the message for every skipped line is appended to ``skipped``. ``reasoning``
    False: problems to generate chains for, whose ``jsonl:`` lines need no reasoning (it is left empty).
    """
    report = skipped if skipped is not None else []
    if limit is not None and limit < 1:
        raise DataError(f"limit {limit}: give a positive number of examples (or none for all)")
    kind, _, rest = source.partition(":")
    if kind == "gsm-symbolic":
        stream: Iterator[Example] = _gsm_symbolic(limit, seed, rest)
    elif kind == "gsm8k" and rest:
        stream = _read_jsonl(Path(rest).expanduser(), _gsm8k_record, skip_bad, report)
    elif kind == "jsonl" and rest:
        stream = _read_jsonl(Path(rest).expanduser(), _jsonl_record if reasoning else _jsonl_problem, skip_bad, report)
    else:
        raise DataError(f"unknown data source {source!r}: use gsm-symbolic[:templates=IDS], gsm8k:PATH or jsonl:PATH")
    examples: list[Example] = []
    for example in stream:
        examples.append(example)
        if limit is not None and len(examples) >= limit:
            break  # read no further: a bad line after the limit is never needed
    if not examples:
        said = f"all {len(report)} line(s) were bad" if report else "it is empty"
        raise DataError(f"{source} has no examples: {said}")
    return examples


SCAN = 100  # a generated source is filtered from at most this many candidates per example wanted


def select_examples(examples: str | Iterable[Example], tokenizer=None, *, limit: int | None = None,
                    min_tokens: int = 0, max_tokens: int | None = None, seed: int = 0, skip_bad: bool = False,
                    skipped: list[str] | None = None) -> list[Example]:
    """The examples a run takes: the first ``limit`` of ``examples`` (a source, as ``load_examples``
    reads it, or Example objects) whose reasoning has ``min_tokens..max_tokens`` tokens of
    ``tokenizer`` (a tokenizer, or a function that makes one: called only with a token filter, once
    the arguments are checked and the examples read). A generated source makes up to ``SCAN`` times
    ``limit`` candidates to filter (the first that pass, in stream order); a file is read whole. Bad arguments and a filter nothing passes are
    one-line errors; nothing here needs a model's weights."""
    from .errors import SettingsError

    if max_tokens is not None and max_tokens < 1:
        raise SettingsError(f"--max-tokens {max_tokens}: give a positive number of tokens")
    if limit is not None and limit < 1:
        raise SettingsError(f"--limit {limit}: give a positive number of examples")
    filtered = max_tokens is not None or bool(min_tokens)
    if isinstance(examples, str):
        source = examples
        pool = (SCAN * (limit or 100) if is_generated(source) else None) if filtered else limit
        examples = load_examples(source, pool, seed, skip_bad, skipped)
    else:
        source, examples = "the examples", list(examples)
    if not filtered:
        return list(examples)[:limit]
    chosen = []
    if not hasattr(tokenizer, "encode"):
        tokenizer = tokenizer()
    for example in examples:
        if limit is not None and len(chosen) >= limit:
            break
        n = len(tokenizer(example.reasoning, add_special_tokens=False)["input_ids"])
        if min_tokens <= n and (max_tokens is None or n <= max_tokens):
            chosen.append(example)
    if not chosen:
        raise DataError(f"no example of {source} has {min_tokens}..{max_tokens or 'any'} reasoning tokens: "
                        "nothing to do, nothing written")
    return chosen
