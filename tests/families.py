"""Tiny random models of the decoder families researchers bring, each with its family's real chat
template (``tests/data/templates``, sources in ``SOURCES.md``) over the embedded tokenizer.

``build(family, folder, window=None)`` saves one with ``save_pretrained`` (2 layers, hidden 64,
grouped-query attention, the family's own config class and quirks: llama3 rope scaling, qk-norm,
soft-capping, sliding and global layers); ``window`` shortens the sliding window below a chain's
length where the family has one.
"""

from __future__ import annotations

from pathlib import Path

import torch

TEMPLATES = Path(__file__).parent / "data" / "templates"
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=2048)

# family -> (config class, model class, template file, extra config, windowed layers or None)
FAMILIES = {
    "llama3": ("LlamaConfig", "LlamaForCausalLM", "llama3", dict(
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64}), None),
    "qwen2.5": ("Qwen2Config", "Qwen2ForCausalLM", "qwen2.5", dict(tie_word_embeddings=True), "qwen2"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", "qwen3", dict(head_dim=16, tie_word_embeddings=True), "qwen2"),
    "mistral": ("MistralConfig", "MistralForCausalLM", "mistral", dict(sliding_window=None), "all"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", "gemma2", dict(head_dim=16, query_pre_attn_scalar=16,
                                                                   sliding_window=4096), "config"),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", "gemma3", dict(head_dim=16, query_pre_attn_scalar=16,
                                                                       sliding_window=4096,
                                                                       layer_types=["sliding_attention",
                                                                                    "full_attention"]), "config"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", "phi3", dict(sliding_window=None, pad_token_id=0), "all"),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", "olmo2", {}, None),
    "deepseek-r1-distill": ("Qwen2Config", "Qwen2ForCausalLM", "deepseek-r1-distill", dict(tie_word_embeddings=True),
                            None),
}
WINDOWED = [f for f, spec in FAMILIES.items() if spec[4]]


def build(family: str, folder: Path, window: int | None = None, seed: int = 0) -> Path:
    """Save a tiny random ``family`` model with the embedded tokenizer and the family's template."""
    import transformers
    from transformers import AutoTokenizer

    from prunelens.models import DEFAULT_MODEL, resolve_model_path

    config_name, model_name, template, extra, windowed = FAMILIES[family]
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL))
    tokenizer.chat_template = (TEMPLATES / f"{template}.jinja").read_text()
    settings = {**SMALL, **extra, "vocab_size": len(tokenizer)}
    if window is not None:
        if windowed == "qwen2":  # the window on the first layer only (max_window_layers counts full layers)
            settings.update(use_sliding_window=True, sliding_window=window, max_window_layers=1)
        else:
            settings.update(sliding_window=window)
    config = getattr(transformers, config_name)(**settings)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
