"""Accuracy of the category tagger on the hand-labelled gold sets in ``tests/data/``.

    python benchmarks/bench_categories.py [--gold PATH ...] [--out benchmarks/results/categories.json]

``categories_gold.jsonl`` (25 chains) is the development set the rules were written against;
``categories_heldout.jsonl`` (12 chains) was labelled after the rules of the time were frozen;
``categories_blind.jsonl`` (24 chains) was labelled twice from docs/categories.md alone, before the
tagger ran on it (``benchmarks/blind_gold.py``). Rules v3 were then written looking at the blind
set's even-numbered chains only: the odd-numbered half (``blind untouched``) is the honest number,
the even half (``blind seen``) is not evidence. For each set: word accuracy, macro-F1,
per-category precision/recall/F1 and the confusion matrix; JSON holds all. Targets on the blind
set: word accuracy >= 0.95, macro-F1 >= 0.93.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prunelens.categories import RuleAnnotator, evaluate, load_gold
from prunelens.schema import DISPLAY, LABELS
from prunelens.store import write_text

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gold", nargs="+", default=[str(ROOT / f"tests/data/categories_{name}.jsonl")
                                                      for name in ("gold", "heldout", "blind")])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/categories.json"))
    args = parser.parse_args()
    results = {}
    for path in args.gold:
        gold = load_gold(path)
        sets = {Path(path).stem: gold}
        if Path(path).stem == "categories_blind":
            sets.update({"categories_blind untouched": gold[1::2], "categories_blind seen": gold[0::2]})
        for name, rows in sets.items():
            results[name] = report(name, rows, evaluate(RuleAnnotator(), rows))
    write_text(json.dumps(results, indent=2), Path(args.out))
    print(f"wrote {args.out}")


def report(name: str, gold: list, result: dict) -> dict:
    print(f"== {name}: {len(gold)} chains, {result['words']} words: accuracy {result['accuracy']:.3f}, "
          f"macro-F1 {result['macro_f1']:.3f}\n")
    print(f"{'category':<12}{'precision':>10}{'recall':>8}{'F1':>7}{'support':>9}")
    for label in LABELS:
        m = result["per_label"][label]
        print(f"{DISPLAY[label]:<12}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}{m['support']:>9}")
    print("\nconfusion (rows: gold, columns: tagger)")
    print(" " * 12 + "".join(f"{DISPLAY[l][:8]:>9}" for l in LABELS))
    for label, row in zip(LABELS, result["confusion"]["matrix"]):
        print(f"{DISPLAY[label]:<12}" + "".join(f"{v:>9}" for v in row))
    print()
    return result


if __name__ == "__main__":
    main()
