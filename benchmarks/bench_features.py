"""Seconds per example and peak memory of feature extraction (one hooked forward pass per example).

    python benchmarks/bench_features.py [--examples 20] [--data gsm8k:PATH] [--model smollm2-135m]

Prints a table and writes JSON (default ``benchmarks/results/features.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from prunelens import load_examples, load_model, render
from prunelens.hooked import sequence_features
from prunelens.store import write_text

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=f"gsm8k:{ROOT / 'data/gsm8k/train.jsonl'}")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/features.json"))
    args = parser.parse_args()
    model = load_model(args.model)
    layouts = [render(e, model.tokenizer) for e in load_examples(args.data, limit=args.examples)]
    sequence_features(model, layouts[0].ids, len(layouts[0].prompt_ids), len(layouts[0].reasoning_ids))  # warm-up
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for layout in layouts:
        start = time.perf_counter()
        sequence_features(model, layout.ids, len(layout.prompt_ids), len(layout.reasoning_ids))
        seconds.append(time.perf_counter() - start)
    result = {
        "model": args.model, "device": str(model.device), "threads": torch.get_num_threads(),
        "platform": platform.platform(), "examples": len(layouts),
        "mean_tokens": float(np.mean([len(l) for l in layouts])),
        "seconds_per_example": float(np.mean(seconds)), "seconds_p90": float(np.percentile(seconds, 90)),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if model.device.type == "cuda" else None,
    }
    print(f"{'model':<16}{'device':>8}{'examples':>10}{'tokens':>8}{'s/example':>11}{'p90 s':>8}{'peak RSS MiB':>14}")
    print(f"{args.model:<16}{result['device']:>8}{len(layouts):>10}{result['mean_tokens']:>8.0f}"
          f"{result['seconds_per_example']:>11.3f}{result['seconds_p90']:>8.3f}{result['peak_rss_mib']:>14.0f}")
    write_text(json.dumps(result, indent=2), Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
