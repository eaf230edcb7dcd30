"""Exact greedy at real model sizes: random weights from real architectures' configs, no download.

    python benchmarks/bench_gpu.py [--models qwen2.5-1.5b,llama-3.1-8b] [--tokens 150] [--naive-steps 2]
    python benchmarks/bench_gpu.py --models qwen2.5-1.5b --layers 2 --tokens 40   # a CPU smoke run

Speed does not depend on the weights, so each model is built from its config with random bf16
weights (float32 on CPU) and sdpa attention, on a synthetic chain (80 prompt tokens, ``--tokens``
reasoning tokens, 10 post tokens; token ids drawn at random). In one run: the bf16 matmul peak of
the device (a large matmul), exact greedy over the whole chain (seconds, tokens processed, tokens
per second, model FLOPs per second as a share of the peak), and the naive full-recompute algorithm
on its first ``--naive-steps`` steps (time extrapolated by its exact token count). Exactness in
bf16: at every timed step, naive's objective of exact greedy's choice is within ``--tolerance`` of
naive's best (near-ties may pick another index). Targets on an H100: a 150-token chain with the
1.5B-shaped model in under 10 s; at least 35% of bf16 matmul peak while scoring. ``--lockstep K``
also times K such chains searched side by side (``search.lockstep``: candidates of K examples in
shared passes), in seconds per chain beside the one-at-a-time figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from prunelens.layout import Layout
from prunelens.models import PrunerModel
from prunelens.pruning import Engine, NaiveReference
from prunelens.pruning.search import drive, greedy_steps, lockstep
from prunelens.store import write_text

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {  # the published configs' shapes (Qwen2.5-1.5B-Instruct, Llama-3.1-8B-Instruct)
    "qwen2.5-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, rope_theta=1e6,
                         max_position_embeddings=32768, tie_word_embeddings=True, rms_norm_eps=1e-6),
    "llama-3.1-8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, rope_theta=5e5,
                         max_position_embeddings=131072, tie_word_embeddings=False, rms_norm_eps=1e-5),
}


def random_model(name: str, device: str, layers: int | None) -> PrunerModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = dict(CONFIGS[name])
    if layers:
        settings["num_hidden_layers"] = layers
    config = AutoConfig.for_model(**settings)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        hf = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa").eval()
    return PrunerModel(name=name, hf=hf, tokenizer=None, path=f"random:{name}")


def matmul_peak(device: str, size: int = 8192, seconds: float = 2.0) -> float:
    """FLOP/s of a large square matmul in the scoring dtype."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    size = size if device == "cuda" else 1024
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    sync(device)
    return 2 * size**3 * count / (time.perf_counter() - start)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def flops_per_token(model: PrunerModel) -> float:
    """Matmul FLOPs per token of the body and the LM head (attention scores left out)."""
    c = model.hf.config
    head_dim = c.hidden_size // c.num_attention_heads
    attn = c.hidden_size * head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    mlp = 3 * c.hidden_size * c.intermediate_size
    return 2 * (c.num_hidden_layers * (attn + mlp) + c.hidden_size * c.vocab_size)


def synthetic(rng: np.random.Generator, vocab: int, tokens: int) -> Layout:
    """80 prompt, ``tokens`` reasoning and 10 post tokens drawn at random."""
    ids = rng.integers(100, vocab, size=80 + tokens + 10).tolist()
    return Layout(ids[:80], ids[80: 80 + tokens], ids[80 + tokens:], [(0, 0)] * tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="qwen2.5-1.5b,llama-3.1-8b")
    parser.add_argument("--tokens", type=int, default=150, help="reasoning tokens of the synthetic chain")
    parser.add_argument("--layers", type=int, default=None, help="override the layer count (CPU smoke runs)")
    parser.add_argument("--naive-steps", type=int, default=2)
    parser.add_argument("--lockstep", type=int, default=0, help="also time this many chains side by side")
    parser.add_argument("--tolerance", type=float, default=2e-2, help="bf16 objective tolerance for exactness")
    parser.add_argument("--out", default=None, help="JSON (default benchmarks/results/gpu.json or cpu-smoke.json)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.out or ROOT / "benchmarks/results" / ("gpu.json" if device == "cuda" else "cpu-smoke.json"))
    peak = matmul_peak(device)
    print(f"{device}: {torch.cuda.get_device_name() if device == 'cuda' else platform.processor()}; "
          f"matmul peak {peak / 1e12:.1f} TFLOP/s", flush=True)
    rows = []
    for name in args.models.split(","):
        model = random_model(name, device, args.layers)
        rng = np.random.default_rng(0)
        layout = synthetic(rng, model.hf.config.vocab_size, args.tokens)
        engine = Engine(model)
        engine.score(engine.state(layout.ids, 80, 10), [[0]])  # warm-up
        engine = Engine(model)
        sync(device)
        start = time.perf_counter()
        ranking = drive(engine, greedy_steps(engine, layout, args.tokens, None, lambda k: None))
        sync(device)
        seconds = time.perf_counter() - start
        naive = NaiveReference(model)
        start = time.perf_counter()
        exact_ok = []
        kept = list(range(args.tokens))
        for step in range(args.naive_steps):
            scores = naive.candidate_scores(layout, kept)
            chosen = kept.index(ranking.order[step])
            exact_ok.append(max(scores) - scores[chosen] <= args.tolerance)
            kept.pop(chosen)
        sync(device)
        naive_seconds = time.perf_counter() - start
        naive_tokens = NaiveReference.tokens_for(layout)
        row = {"model": name, "layers": model.n_layers, "reasoning_tokens": args.tokens, "seconds": seconds,
               "tokens": engine.tokens, "lower_bound": engine.useful, "tokens_per_second": engine.tokens / seconds,
               "peak_share": engine.tokens * flops_per_token(model) / seconds / peak,
               "naive_seconds": naive_seconds * naive_tokens / naive.tokens, "naive_tokens": naive_tokens,
               "exact_within_tolerance": all(exact_ok)}
        row["speedup_vs_naive"] = row["naive_seconds"] / seconds
        if args.lockstep > 1:
            engine = Engine(model)
            searches = ((i, greedy_steps(engine, synthetic(rng, model.hf.config.vocab_size, args.tokens), args.tokens,
                                         None, lambda k: None)) for i in range(args.lockstep))
            sync(device)
            start = time.perf_counter()
            for _ in lockstep(engine, searches, args.lockstep):
                pass
            sync(device)
            row.update(lockstep=args.lockstep, lockstep_seconds_per_chain=(time.perf_counter() - start) / args.lockstep)
        rows.append(row)
        print(json.dumps(row), flush=True)
        del model, engine
        if device == "cuda":
            torch.cuda.empty_cache()
    print(f"\n{'model':<16}{'s/chain':>9}{'tok/s':>10}{'peak':>7}{'naive s':>10}{'speed-up':>10}{'exact':>7}"
          f"{'lockstep s/chain':>18}")
    for r in rows:
        print(f"{r['model']:<16}{r['seconds']:>9.1f}{r['tokens_per_second']:>10.0f}{r['peak_share']:>7.0%}"
              f"{r['naive_seconds']:>10.0f}{r['speedup_vs_naive']:>9.1f}x{str(r['exact_within_tolerance']):>7}"
              f"{r.get('lockstep_seconds_per_chain', float('nan')):>18.1f}")
    write_text(json.dumps({"device": device, "peak_flops": peak, "torch": torch.__version__, "rows": rows}, indent=2), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
