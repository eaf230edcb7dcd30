"""The own-chains analysis (docs/own-chains-plan.md, step 1b): the teacher's own chains against the
reference chains of the same problems, both pruned by the teacher, with the human GSM8K chains of
``figures/gsm8k-200-greedy-v3`` (pruned by the base model) beside them, descriptive only.

Writes to ``figures/own-chains/``: ``survival.csv`` (each kind's survival ratio to uniform deletion at
keep 0.5, 95% bootstrap interval over chains), ``difference.csv`` (own - reference, paired bootstrap
over problems), ``style.csv`` (meta-discourse tokens and hedges per 100 reasoning tokens, with 95%
bootstrap intervals over chains, and how many own chains are word for word the reference chain), ``findings.csv`` (each published finding by the plan's rule) and
``category_survival.png``. Both runs annotated first (``prunelens annotate``).

    python experiments/own-chains/compare.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prunelens import Run
from prunelens.analysis import category_survival
from prunelens.distill.evaluate import hedge_count
from prunelens.figures import methods_figure
from prunelens.modelling import BOOTSTRAP
from prunelens.schema import HEADLINE_KEEP

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
OUT = ROOT / "figures" / "own-chains"
HUMAN_RUN, HUMAN_TABLES = ROOT / "experiments" / "gsm8k-200-greedy", ROOT / "figures" / "gsm8k-200-greedy-v3"
KINDS = {"own": "own chains (teacher)", "reference": "reference chains (teacher)",
         "human": "human GSM8K (base model)"}
# published direction of each finding: the survival ratio's interval must exclude 1 on this side
FINDINGS = [("symbolic math kept", "SYMBOLIC_MATH", ">"), ("grammar goes first", "FUNCTION", "<"),
            ("meta-discourse goes first", "META_DISCOURSE", "<"), ("coreference goes early", "COREFERENCE", "<")]


def _rate(counts: np.ndarray, tokens: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Per 100 tokens over all chains, with a 95% bootstrap interval over chains."""
    draws = np.random.default_rng(seed).integers(0, len(tokens), size=(BOOTSTRAP, len(tokens)))
    boot = 100 * counts[draws].sum(1) / tokens[draws].sum(1)
    return 100 * counts.sum() / tokens.sum(), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def style(kind: str, examples: pd.DataFrame, meta: pd.Series) -> dict:
    """Chains, mean length, meta-discourse tokens (``meta``: per chain) and hedges per 100 tokens."""
    tokens = examples.n_reasoning.to_numpy(float)
    hedges = np.array([hedge_count(text) for text in examples.reasoning], float)
    row = {"kind": KINDS[kind], "chains": len(examples), "mean_tokens": tokens.mean(),
           "hedges": int(hedges.sum()), "meta_discourse_tokens": int(meta.sum())}
    for name, counts in (("meta_discourse", meta.reindex(examples.example_id, fill_value=0).to_numpy(float)),
                         ("hedges", hedges)):
        row[f"{name}_per_100"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _rate(counts, tokens)
    return row


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    own, reference, human = Run(HERE / "own"), Run(HERE / "reference"), Run(HUMAN_RUN)
    survival = {"own": category_survival(own.tokens(), ratios=[HEADLINE_KEEP]),
                "reference": category_survival(reference.tokens(), ratios=[HEADLINE_KEEP]),
                "human": pd.read_csv(HUMAN_TABLES / "category_survival.csv")}
    table = pd.concat([s[np.isclose(s.keep_ratio, HEADLINE_KEEP)].assign(kind=KINDS[k]) for k, s in survival.items()])
    table.to_csv(OUT / "survival.csv", index=False)
    difference = own.survival_difference(reference, keep_ratio=HEADLINE_KEEP)
    difference.to_csv(OUT / "difference.csv", index=False)

    def meta(run: Run) -> pd.Series:
        tokens = run.tokens()
        return tokens[tokens.category == "META_DISCOURSE"].groupby("example_id").size()

    # the human chains' categories are those of figures/gsm8k-200-greedy-v3 (rules v3): their count
    # per chain is not committed, only the total, so their meta-discourse interval is left out
    human_meta = table[(table.kind == KINDS["human"]) & (table.category == "META_DISCOURSE")].tokens.sum()
    rows = [style("own", own.examples(), meta(own)), style("reference", reference.examples(), meta(reference)),
            style("human", human.examples(), pd.Series(dtype=float))]
    rows[2].update(meta_discourse_tokens=int(human_meta), meta_discourse_ci_low=np.nan, meta_discourse_ci_high=np.nan,
                   meta_discourse_per_100=100 * human_meta / human.examples().n_reasoning.sum())
    # how far the teacher's own chains are from what it was trained to imitate: word for word the same
    same = own.examples().merge(reference.examples(), on="example_id", suffixes=("", "_reference"))
    rows[0]["identical_to_reference"] = int((same.reasoning.str.split().map(" ".join)
                                             == same.reasoning_reference.str.split().map(" ".join)).sum())
    pd.DataFrame(rows).to_csv(OUT / "style.csv", index=False)

    findings = []
    indexed = {k: s[np.isclose(s.keep_ratio, HEADLINE_KEEP)].set_index("category") for k, s in survival.items()}
    diff = difference.set_index("category")
    for finding, category, side in FINDINGS:
        row = {"finding": finding, "category": category, "direction": side}
        for kind, s in indexed.items():
            if category not in s.index:
                row.update({f"{kind}_ratio": np.nan, f"{kind}_holds": "absent"})
                continue
            r = s.loc[category]
            holds = r.ratio_ci_low > 1 if side == ">" else r.ratio_ci_high < 1
            row.update({f"{kind}_ratio": r.ratio, f"{kind}_ci_low": r.ratio_ci_low, f"{kind}_ci_high": r.ratio_ci_high,
                        f"{kind}_holds": "holds" if holds else "not shown"})
        if category in diff.index:
            d = diff.loc[category]
            row.update({"difference": d.difference, "difference_ci_low": d.difference_ci_low,
                        "difference_ci_high": d.difference_ci_high,
                        "differs": bool(d.difference_ci_low > 0 or d.difference_ci_high < 0)})
        findings.append(row)
    pd.DataFrame(findings).to_csv(OUT / "findings.csv", index=False)
    figure = methods_figure([(KINDS[k], s) for k, s in survival.items()], HEADLINE_KEEP, by="kind of chain")
    figure.savefig(OUT / "category_survival.png", dpi=150, bbox_inches="tight")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(pd.DataFrame(findings).to_string(index=False))
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
