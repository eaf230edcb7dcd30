"""Tokens through the model for whole exact-greedy searches: naive, the rows engine, the flat engine
with and without its memo, beside the arithmetic ``bench_gpu.py`` extrapolates by.

    python benchmarks/bench_memo.py            # writes benchmarks/results/memo-tokens.json

The work a search does depends on the chain's length and where it deletes, not on the weights, so a
tiny random Llama (2 layers, hidden 64) prunes synthetic chains (80 prompt, N reasoning, 10 post
tokens) to the end. Counted in one run, per chain length: the naive algorithm's tokens (every
candidate whole), each engine's tokens through the model, and ``bench_gpu.step_tokens`` (each
deletion at the chain's middle) with and without the memo; whether the engines chose the same
deletions (float32: a near-tie may flip one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu import step_tokens, synthetic  # noqa: E402

from prunelens.models import PrunerModel  # noqa: E402
from prunelens.pruning import Engine, NaiveReference  # noqa: E402
from prunelens.pruning.flat import FlatEngine  # noqa: E402
from prunelens.pruning.search import drive, greedy_steps  # noqa: E402
from prunelens.store import write_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {"rows": lambda m: Engine(m), "flat-nomemo": lambda m: FlatEngine(m, memo=False),
           "flat": lambda m: FlatEngine(m)}


def tiny_model() -> PrunerModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=1000, max_position_embeddings=1024)
    return PrunerModel("tiny-llama", LlamaForCausalLM(config).eval(), None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", default="30,60", help="reasoning tokens of the chains, comma-separated")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/memo-tokens.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = tiny_model()
    rng = np.random.default_rng(0)
    rows = []
    for n in (int(t) for t in args.tokens.split(",")):
        layout = synthetic(rng, 1000, n)
        row = {"reasoning_tokens": n, "naive": NaiveReference.tokens_for(layout),
               "arithmetic_nomemo": step_tokens(n, 80, 10, n, memo=False), "arithmetic_memo": step_tokens(n, 80, 10, n)}
        orders = {}
        for name, make in ENGINES.items():
            engine = make(model)
            orders[name] = drive(engine, greedy_steps(engine, layout, n, None, lambda k: None)).order
            row[name] = engine.tokens
        row["same_orders"] = len({tuple(o) for o in orders.values()}) == 1
        row["memo_saves"] = 1 - row["flat"] / row["flat-nomemo"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'N':>4}{'naive':>11}{'rows':>10}{'flat-nomemo':>13}{'flat':>10}{'memo saves':>12}"
          f"{'arith. nomemo':>15}{'arith. memo':>13}{'same':>6}")
    for r in rows:
        print(f"{r['reasoning_tokens']:>4}{r['naive']:>11}{r['rows']:>10}{r['flat-nomemo']:>13}{r['flat']:>10}"
              f"{r['memo_saves']:>11.1%}{r['arithmetic_nomemo']:>15}{r['arithmetic_memo']:>13}{str(r['same_orders']):>6}")
    write_text(json.dumps({"command": "python benchmarks/bench_memo.py " + " ".join(sys.argv[1:]), "rows": rows},
                          indent=2), Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
