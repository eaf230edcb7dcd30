"""Searches side by side (``--lockstep K``) against one at a time, in one run.

    python benchmarks/bench_lockstep.py [--data gsm-symbolic] [--limit 8] [--keep-ratio 0.5] [--lockstep 1,4]
                                        [--model smollm2-135m] [--threads 2]

Exact greedy on the same chains once per K; prints wall time, tokens processed and needed, the
speed-up over K = 1, and whether every order equals K = 1's; writes benchmarks/results/lockstep.json.
Late greedy steps of a short chain score a few short candidates, too little to fill a pass;
lockstep packs the candidates of K examples into shared passes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from prunelens.data import load_examples
from prunelens.models import load_model
from prunelens.pruning import prune_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="gsm-symbolic")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--keep-ratio", type=float, default=0.5)
    parser.add_argument("--lockstep", default="1,4", help="comma-separated K; the first is the reference")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lockstep.json")
    args = parser.parse_args()
    widths = [int(k) for k in args.lockstep.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    examples = load_examples(args.data, limit=args.limit)
    rows, orders = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in widths:
            start = time.perf_counter()
            prune_examples(model, examples, Path(tmp) / f"x{k}", keep_ratio=args.keep_ratio, lockstep=k,
                           show_progress=False)
            seconds = time.perf_counter() - start
            table = pd.read_parquet(Path(tmp) / f"x{k}" / "examples.parquet").set_index("example_id")
            orders[k] = [list(o) for o in table.order]
            rows.append({"lockstep": k, "seconds": seconds, "tokens_processed": int(table.tokens_processed.sum()),
                         "tokens_needed": int(table.tokens_needed.sum()), "same_orders": orders[k] == orders[widths[0]]})
    frame = pd.DataFrame(rows)
    frame["speed_up"] = frame.seconds.iloc[0] / frame.seconds
    reasoning = [len(model.tokenizer(e.reasoning, add_special_tokens=False)["input_ids"]) for e in examples]
    print(f"exact greedy to keep {args.keep_ratio} on {len(examples)} chains of {args.data} "
          f"({min(reasoning)}-{max(reasoning)} tokens), {model.name}, {torch.get_num_threads()} threads, {model.device}")
    print(frame.round(2).to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data": args.data, "chains": len(examples), "keep_ratio": args.keep_ratio,
                                    "model": model.name, "device": str(model.device),
                                    "threads": torch.get_num_threads(), "rows": rows}, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
