"""A model directory's architecture and tokenizer with random weights, for timing where the weights
cannot go (the device machine takes 64 MiB; SmolLM2-135M in float32 is 538 MB).

    python benchmarks/random_weights.py SRC DST [--seed 0]

SRC needs ``config.json`` and the tokenizer files, not the weights; DST gets a loadable model
(safetensors) and the tokenizer. Training time does not depend on the weights. Generation time
does, through the output length: a random student writes until ``max_new_tokens``, so an
evaluation timed with it is an upper bound.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.src), dtype=torch.float32)
    model.save_pretrained(args.dst)
    AutoTokenizer.from_pretrained(args.src).save_pretrained(args.dst)
    print(f"{args.dst}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M random weights")


if __name__ == "__main__":
    main()
