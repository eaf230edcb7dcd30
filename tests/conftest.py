"""Shared fixtures: the real embedded model, a tiny random model, and real data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "data" / "gsm8k" / "train.jsonl"  # in the repository, with its license


def pytest_collection_modifyitems(config, items):
    """Lanes follow from what a test uses, so a new test cannot end up in the wrong one: the embedded
    model's fixture, the Ray cluster (test_cluster.py), Chromium (test_viewer.py), a notebook
    (test_notebooks.py)."""
    for item in items:
        file = item.path.name
        if "model" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_model)
        if file == "test_cluster.py" or "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
        if file == "test_viewer.py":
            item.add_marker(pytest.mark.browser)
        if file == "test_notebooks.py":
            item.add_marker(pytest.mark.notebook)


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
def tiny_run(tiny_model, short_chains, tmp_path_factory):
    """The one way tests make runs: ``tiny_run(method, chains=6, keep_ratio=0, features=False,
    categories=False)`` prunes the first ``chains`` short chains with the tiny model (and adds
    features, categories), once per session for each set of arguments. A test that adds a table to
    its run asks for arguments no test elsewhere asks for."""
    from prunelens import Run

    made = {}

    def make(method: str = "greedy", chains: int = 6, keep_ratio: float = 0.0, features: bool = False,
             categories: bool = False) -> Path:
        key = (method, chains, keep_ratio, features, categories)
        if key not in made:
            run = Run(tmp_path_factory.mktemp(f"run-{method}") / method)
            run.prune(tiny_model, short_chains[:chains], method, keep_ratio=keep_ratio, show_progress=False)
            if features:
                run.features(tiny_model, show_progress=False)
            if categories:
                run.annotate()
            made[key] = run.path
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_greedy_run(tiny_run):
    """Exact greedy on 6 short chains with the tiny model, with features: what a pruner is fitted on."""
    return tiny_run("greedy", features=True)


@pytest.fixture(scope="session")
def full_run(tiny_run):
    """A greedy run and a random run of 6 chains with features and categories (tiny model)."""
    return {method: tiny_run(method, features=True, categories=True) for method in ("greedy", "random")}


@pytest.fixture(scope="session")
def tiny_pruner(tiny_greedy_run, tmp_path_factory):
    """A pruner fitted on ``tiny_greedy_run``, saved."""
    from prunelens.pruning.learned import fit_pruner

    return fit_pruner([tiny_greedy_run]).save(tmp_path_factory.mktemp("pruner") / "tiny")
