"""The reference chains of the own chains' problems (docs/own-chains-plan.md, step 1b).

Reads the first ``LIMIT`` chains of ``chains/chains.jsonl`` (the teacher's own, in problem order) and
writes ``reference.jsonl``: for each, the GSM-Symbolic template's own rationale of the same problem
(the kind of chain the teacher was trained on), under the question exactly as the teacher was asked.

    python experiments/own-chains/reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

from prunelens.data import load_examples

HERE = Path(__file__).parent
LIMIT = 100  # chains pruned of each kind
SOURCE = "gsm-symbolic:templates=4,6,10,16,26,31,43,45,48,72,75,99"  # experiments/distill-paper's eval set
SEED = 1


def main() -> None:
    own = [json.loads(line) for line in (HERE / "chains" / "chains.jsonl").read_text().splitlines()][:LIMIT]
    if len(own) < LIMIT:
        raise SystemExit(f"{len(own)} own chains, fewer than {LIMIT}: generate more first")
    last = max(int(chain["id"].rsplit("-", 1)[1]) for chain in own)
    templates = {e.id: e for e in load_examples(SOURCE, limit=last + 1, seed=SEED)}
    with open(HERE / "reference.jsonl", "w") as out:
        for chain in own:
            template = templates[chain["id"]]
            if (template.question, template.answer) != (chain["source_question"], chain["gold"]):
                raise SystemExit(f"{chain['id']}: the template's problem is not the one the teacher was asked")
            out.write(json.dumps({"id": template.id, "question": chain["question"], "reasoning": template.reasoning,
                                  "answer": template.answer}) + "\n")


if __name__ == "__main__":
    main()
