"""Shared fixtures: the real embedded model, a tiny random model, and real data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "data" / "gsm8k" / "train.jsonl"  # in the repository, with its license


@pytest.fixture(scope="session")
def gsm8k_path() -> Path:
    return GSM8K


@pytest.fixture(scope="session")
def model():
    """The embedded SmolLM2-135M-Instruct, loaded offline on the CPU."""
    from prunelens.models import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer random Llama with the embedded tokenizer, saved and loaded as a local directory."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from prunelens.models import DEFAULT_MODEL, load_model, resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL))  # no 135M model load
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return load_model(str(folder), device="cpu")


@pytest.fixture(scope="session")
def short_chains(gsm8k_path):
    """The shortest GSM8K train chains among the first 200 (quick to prune exactly)."""
    from prunelens.data import load_examples

    examples = load_examples(f"gsm8k:{gsm8k_path}", limit=200)
    return sorted(examples, key=lambda e: len(e.reasoning))


@pytest.fixture(scope="session")
def tiny_greedy_run(tiny_model, short_chains, tmp_path_factory):
    """Exact greedy on 6 short chains with the tiny model, with features: what a pruner is fitted on."""
    from prunelens.features import features_run
    from prunelens.pruning import prune_examples

    run = tmp_path_factory.mktemp("learned") / "greedy"
    prune_examples(tiny_model, short_chains[:6], run, method="greedy", show_progress=False)
    features_run(tiny_model, run, show_progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_pruner(tiny_greedy_run, tmp_path_factory):
    """A pruner fitted on ``tiny_greedy_run``, saved."""
    from prunelens.pruning.learned import fit_pruner

    return fit_pruner([tiny_greedy_run]).save(tmp_path_factory.mktemp("pruner") / "tiny")
