"""Reading a model's answer: where its reasoning ends, what it answers, and whether that is right.

- **Splitting a reply** (``split_reply``) into the reasoning and the final answer, at the model's
  own answer marker. A thinking model's reply (its prompt opened a think block, or it writes one)
  splits at the close of the block, ``</think>``: the reasoning is the block, the answer is read
  from what follows (its first marker, else its last number). Any other reply splits at the first of these markers that has an answer
  after it (a number or a LaTeX expression; of several on one line, the first named here): a ``#### X`` line (GSM8K), ``\\boxed{X}``, a JSON
  object ``{"answer": X}``, a line starting ``Answer: X`` (markdown ``**Answer:**`` too), or a
  sentence with ``the (final) answer is X``. The reasoning is the text before the marker's line
  (before its sentence for ``answer is``; before the marker itself where the line holds all the
  reasoning, as in ``so x = \\boxed{8}``); a reply with no reasoning before its answer does not split;
  anything after the first answer is a restatement and dropped. ``Reply.rule`` says which marker
  split it; a reply without one (it ran out of tokens, say) does not split (``rule`` None).
- **The value of an answer** (``answer_value``): the content of ``\\boxed{}`` if any; a LaTeX or
  fraction expression as written; else the first number after the last ``=`` (``48 + 24 = 72
  clips`` -> 72; ``72 clips, which is 2 more`` -> 72), normalised as ``prunelens.numbers`` does
  (``$1,200.00`` -> ``1200``).
- **Checking** (``answers_match``): numbers by value (``36`` = ``36.0``); where either side is a
  LaTeX or fraction expression, through ``math-verify`` (``\\frac{1}{2}`` = ``0.5``, ``1/2`` = ``0.5``);
  anything else as stripped text (a prediction is one answer: ``18 apples`` is not ``18``).
- **A student's answer** (``extract_answer``, the distillation's evaluation): the number on the
  last ``Answer:`` line, else the last number anywhere (credit for a student that never learnt the
  answer line, at the risk of credit for a number it merely mentioned last).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal

from .numbers import NUMBER, normalise

THINK_OPEN, THINK_END = "<think>", "</think>"
SPLIT_RULES = ("think", "####", "boxed", "json", "answer-line", "answer-is")  # what Reply.rule can be

_ANSWER = r"^[ \t*#]*answer[ \t]*:"  # a line starting with "Answer:" (markdown "**Answer:**" too)
ANSWER_LINE = re.compile(rf"{_ANSWER}(?P<rest>.*)$(?![\s\S]*{_ANSWER})", re.IGNORECASE | re.MULTILINE)
_MARKERS = {  # rule -> where the answer starts (group "rest": the rest of the line)
    "####": re.compile(r"^[ \t]*####(?P<rest>.*)$", re.MULTILINE),
    "boxed": re.compile(r"\\boxed\{", re.MULTILINE),
    "json": re.compile(r"\{\s*\"answer\"\s*:[^{}]*\}", re.IGNORECASE),
    "answer-line": re.compile(rf"{_ANSWER}(?P<rest>.*)$", re.IGNORECASE | re.MULTILINE),
    # "the (final) answer (to the problem) is X", X starting as a number or formula does
    "answer-is": re.compile(r"\b(?:final\s+)?answer(?:\s+to\s+[^.\n]{0,60}?)?\s+(?:is|=)\s*:?\s*"
                           r"(?P<rest>[\"'*$\\(]*[-+\d\\][^\n]*)", re.IGNORECASE),
}
_EXPRESSION = re.compile(r"\\(?:d?frac|sqrt|pi|cdot|times)|\^|\d\s*/\s*\d")


@dataclass(frozen=True)
class Reply:
    """A reply split into its ``reasoning`` and its final ``answer`` (``answer_value``), at ``rule``
    (one of ``SPLIT_RULES``); ``rule`` and ``answer`` are None where it does not split."""

    reasoning: str
    answer: str | None
    rule: str | None


def _boxed(text: str, start: int) -> tuple[str, int] | None:
    """The content of the ``\\boxed{`` whose brace opens at ``start - 1``, and where it closes."""
    depth = 1
    for k in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return text[start:k], k + 1
    return None


def answer_value(text: str) -> str | None:
    """The answer ``text`` states (see the module docstring), or None where it states none."""
    found = re.search(r"\\boxed\{", text)
    if found:
        inner = _boxed(text, found.end())
        text = inner[0] if inner else text[found.end():]
    text = text.strip().strip("$").strip().removesuffix(".").strip("$* ")
    if _EXPRESSION.search(text):
        return text.split("=")[-1].strip()
    numbers = list(NUMBER.finditer(text.split("=")[-1]))
    return normalise(numbers[0]) if numbers else None


def _first_marker(text: str) -> tuple[str, int, str] | None:
    """The first answer marker of ``text`` with an answer after it: (rule, where it starts, answer)."""
    found = []
    for rule, pattern in _MARKERS.items():
        for match in pattern.finditer(text):
            if rule == "boxed":
                inner = _boxed(text, match.end())
                value = answer_value(inner[0]) if inner else None
            elif rule == "json":
                try:
                    raw = json.loads(match[0])
                    value = answer_value(str(next(v for k, v in raw.items() if k.lower() == "answer")))
                except (json.JSONDecodeError, StopIteration):
                    value = None
            else:
                value = answer_value(match["rest"])
            if value is not None:
                found.append((text.count("\n", 0, match.start()), list(_MARKERS).index(rule), match.start(), value))
                break
    if not found:
        return None
    _, priority, start, value = min(found)  # the first line with a marker; on it, the most specific marker
    return list(_MARKERS)[priority], start, value


def _cut(text: str, start: int, rule: str) -> str:
    """The reasoning before a marker at ``start``: up to its line (its sentence for ``answer is``)."""
    line = text.rfind("\n", 0, start) + 1
    if rule == "answer-is":
        line = max([line] + [text.rfind(p, 0, start) + len(p) for p in (". ", "! ", "? ") if p in text[:start]])
    head = text[:line].strip()
    return head or ("" if rule == "answer-is" else text[:start].strip())


def split_reply(text: str, think: bool = False) -> Reply:
    """``text`` split into reasoning and answer (see the module docstring); ``think``: the reply began
    inside an opened think block (the prompt opened it), so only its close splits it."""
    if think or THINK_END in text:
        block, closed, after = text.partition(THINK_END)
        reasoning = block.strip().removeprefix(THINK_OPEN).strip()
        marker = _first_marker(after) if closed else None
        numbers = list(NUMBER.finditer(after))
        answer = marker[2] if marker else (normalise(numbers[-1]) if numbers else None)
        if answer is None or not reasoning:
            return Reply(reasoning, None, None)
        return Reply(reasoning, answer, "think")
    marker = _first_marker(text)
    if marker is None:
        return Reply(text.strip(), None, None)
    rule, start, answer = marker
    reasoning = _cut(text, start, rule)
    return Reply(reasoning, answer, rule) if reasoning else Reply("", None, None)


def _as_number(text: str) -> str | None:
    """``text`` normalised when it is one number (a trailing period allowed), else None."""
    match = NUMBER.fullmatch(text.strip().removesuffix("."))
    return normalise(match) if match else None


def _math_equal(predicted: str, gold: str) -> bool | None:
    """math-verify's verdict, or None where it reads either side as nothing."""
    from math_verify import parse, verify

    def read(text: str):
        return parse(text if "$" in text else f"${text}$")

    a, b = read(gold), read(predicted)
    return bool(verify(a, b)) if a and b else None


def answers_match(predicted: str | None, gold: str) -> bool:
    """Whether ``predicted`` equals ``gold``: see the module docstring."""
    if predicted is None:
        return False
    expected, got = _as_number(gold), _as_number(predicted)
    if expected is not None and got is not None:
        return Decimal(got) == Decimal(expected)
    verdict = _math_equal(predicted, gold) if _EXPRESSION.search(predicted + " " + gold) else None
    return verdict if verdict is not None else predicted.strip() == gold.strip()


def extract_answer(text: str) -> str | None:
    """The (normalised) number a student's output answers with; see the module docstring."""
    line = ANSWER_LINE.search(text)
    numbers = list(NUMBER.finditer(line["rest"])) if line else []
    numbers = numbers or list(NUMBER.finditer(text))
    return normalise(numbers[-1]) if numbers else None
