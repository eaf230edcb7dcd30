"""Numbers in text: finding them, normalising them, and the ones a pruned chain breaks.

A number is a sign (not after a word, so ``3-5`` holds no -5), an optional ``$``, digits with or
without thousands commas, and decimals; ``normalise`` keeps the sign and drops ``$``, the commas,
and trailing zeros of decimals (``"$1,200.00"`` -> ``"1200"``).

**Broken numbers.** Of the numbers a pruned chain states, the share its problem never states (its
question, full chain and answer; values compared normalised and without sign): numbers a deletion
cut short or fused with the next. With one token per digit, ``31-4-8 = 19`` pruned to ``14 =9``
states 14 and 9, neither in the problem. Deleting whole numbers breaks none. The distillation
stage reports it for each training set, the analysis for a run at each keep ratio.

**Results kept.** The share of pruned chains that still state their full chain's result (the last
number it states): truncation loses it first, as it cuts the chain's last step.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

NUMBER = re.compile(r"(?P<sign>(?<![\w.])[-+])?\$?(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?")


def normalise(match: re.Match) -> str:
    """A ``NUMBER`` match as a plain string: sign kept, ``$``, commas and trailing decimal zeros dropped."""
    frac = (match["frac"] or "").rstrip("0").rstrip(".")
    return ("-" if match["sign"] == "-" else "") + match["int"].replace(",", "") + frac


def stated(text: str) -> list[str]:
    """The numbers ``text`` states, normalised, without sign."""
    return [normalise(m).removeprefix("-") for m in NUMBER.finditer(text)]


def problem_texts(examples) -> dict[str, str]:
    """``{example_id: its question, full chain and answer}``: what each problem states (a table with
    those columns)."""
    return dict(zip(examples["example_id"], examples["question"] + "\n" + examples["reasoning"] + "\n"
                    + examples["answer"].astype(str)))


def broken_number_share(texts: Sequence[str], references: Sequence[str]) -> float:
    """Share of the numbers stated in ``texts`` that their ``references`` (one each) never state; nan
    when ``texts`` state none."""
    if len(texts) != len(references):
        raise ValueError(f"{len(texts)} texts but {len(references)} references")
    count = broken = 0
    for text, reference in zip(texts, references):
        known = set(stated(reference))
        values = stated(text)
        count += len(values)
        broken += sum(v not in known for v in values)
    return broken / count if count else math.nan


def result_kept_share(texts: Sequence[str], chains: Sequence[str]) -> float:
    """Share of ``texts`` that state the result of their full chain in ``chains`` (one each: its last
    number); chains stating no number are left out, nan when all are."""
    if len(texts) != len(chains):
        raise ValueError(f"{len(texts)} texts but {len(chains)} chains")
    kept = [said[-1] in stated(text) for text, chain in zip(texts, chains) if (said := stated(chain))]
    return sum(kept) / len(kept) if kept else math.nan
