"""Build the blind gold set of the category tagger: chains labelled by hand before the tagger saw them.

    python benchmarks/blind_gold.py prepare DIR            # DIR/tasks.jsonl: chains and their words, no labels
    python benchmarks/blind_gold.py merge DIR              # DIR/labels-a.jsonl + labels-b.jsonl (+ adjudicated.jsonl)

``prepare`` picks 14 GSM8K train chains that no other gold set uses (a seeded draw from lines
5000-5999) and 10 GSM-Symbolic chains of a seed no other gold set uses (23), and cuts them into the
words the tagger is scored on (``categories.units`` without white space). Two labellers label every
word independently from ``docs/categories.md`` alone, as ``{"id", "labels": [...]}`` lines;
``merge`` reports their agreement (word accuracy and Cohen's kappa), writes the words they disagree
on to ``DIR/disputes.jsonl``, and once a third reading has settled those (``DIR/adjudicated.jsonl``:
``{"id", "index", "label"}``) writes ``tests/data/categories_blind.jsonl`` in the gold format.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from prunelens.categories import units
from prunelens.schema import LABELS
from prunelens.data import load_examples

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "data/gsm8k/train.jsonl"
OUT = ROOT / "tests/data/categories_blind.jsonl"


def prepare(folder: Path) -> None:
    gsm8k = {e.id: e for e in load_examples(f"gsm8k:{GSM8K}", limit=6000)}
    pool = sorted((i for i in gsm8k if 5000 <= int(i.split("-")[1]) < 6000), key=lambda i: int(i.split("-")[1]))
    chosen = [gsm8k[i] for i in sorted(random.Random(14).sample(pool, 14), key=lambda i: int(i.split("-")[1]))]
    chosen += list(load_examples("gsm-symbolic", limit=10, seed=23))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "tasks.jsonl", "w", encoding="utf-8") as f:
        for e in chosen:
            words = [[u.start, u.end, u.text] for u in units(e.reasoning) if u.kind != "space"]
            f.write(json.dumps({"id": e.id, "question": e.question, "reasoning": e.reasoning, "words": words},
                               ensure_ascii=False) + "\n")
    print(f"{len(chosen)} chains, {sum(1 for _ in open(folder / 'tasks.jsonl'))} lines in {folder / 'tasks.jsonl'}")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _labels(path: Path, tasks: list[dict]) -> dict[str, list[str]]:
    rows = {r["id"]: r["labels"] for r in _read(path)}
    for t in tasks:
        got = rows.get(t["id"])
        if got is None or len(got) != len(t["words"]) or set(got) - set(LABELS):
            raise SystemExit(f"{path}: {t['id']}: need {len(t['words'])} labels from {LABELS}")
    return rows


def merge(folder: Path) -> None:
    from sklearn.metrics import cohen_kappa_score

    tasks = _read(folder / "tasks.jsonl")
    a, b = _labels(folder / "labels-a.jsonl", tasks), _labels(folder / "labels-b.jsonl", tasks)
    flat_a = [x for t in tasks for x in a[t["id"]]]
    flat_b = [x for t in tasks for x in b[t["id"]]]
    agree = sum(x == y for x, y in zip(flat_a, flat_b)) / len(flat_a)
    print(f"{len(flat_a)} words; labellers agree on {agree:.3f}, Cohen's kappa {cohen_kappa_score(flat_a, flat_b):.3f}")
    disputes = [{"id": t["id"], "index": i, "word": t["words"][i][2], "a": a[t["id"]][i], "b": b[t["id"]][i],
                 "context": t["reasoning"][max(0, t["words"][i][0] - 60):t["words"][i][1] + 60]}
                for t in tasks for i in range(len(t["words"])) if a[t["id"]][i] != b[t["id"]][i]]
    with open(folder / "disputes.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in disputes)
    settled_path = folder / "adjudicated.jsonl"
    if not settled_path.exists():
        print(f"{len(disputes)} disputed words in {folder / 'disputes.jsonl'}; settle them in {settled_path}")
        return
    settled = {(r["id"], r["index"]): r["label"] for r in _read(settled_path)}
    missing = [(d["id"], d["index"]) for d in disputes if (d["id"], d["index"]) not in settled]
    if missing or set(settled.values()) - set(LABELS):
        raise SystemExit(f"{settled_path}: {len(missing)} disputes unsettled or labels outside {LABELS}")
    with open(OUT, "w", encoding="utf-8") as f:
        for t in tasks:
            labels = [settled.get((t["id"], i), x) for i, x in enumerate(a[t["id"]])]
            words = [[s, e, text, label] for (s, e, text), label in zip(t["words"], labels)]
            f.write(json.dumps({"id": t["id"], "question": t["question"], "reasoning": t["reasoning"],
                                "words": words}, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["prepare", "merge"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    (prepare if args.step == "prepare" else merge)(args.folder)


if __name__ == "__main__":
    main()
