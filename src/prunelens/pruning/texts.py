"""Methods that compress a chain into new text rather than ranking its tokens.

- ``import``: compressed chains made elsewhere (a frontier model, a person), read from JSONL lines
  ``{"id", "keep_ratio", "reasoning"}``; every id must be an example of the run's data.
- ``rewrite``: an instruction model (the pruner itself, or ``rewriter``) is asked, with
  ``REWRITE_PROMPT``, to rewrite the chain within a budget of ``round(keep_ratio * n)`` tokens of
  the pruner's tokenizer; greedy decoding, at most the budget of new tokens, the reply cut to the
  budget. Keep ratios: the run's, or ``COMPARE_KEEPS`` when it ranks every token (keep ratio 0).

A text run's ``texts`` table holds each compressed chain with its achieved ratio and its exact
objective under the pruner; the stage writes those objectives into the run's trajectory at the
step of their keep ratio, so agreement and the normalised objective read text runs like any other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from ..errors import DataError, SettingsError
from .registry import register, setting

REWRITE_PROMPT = ("Shorten the reasoning below to at most {budget} tokens. Keep every number and calculation "
                  "needed to reach the answer and drop everything else. Reply with the shortened reasoning only."
                  "\n\nQuestion: {question}\n\nReasoning: {reasoning}")


@lru_cache(maxsize=4)
def read_compressed(path: str) -> dict[str, dict[float, tuple[int, str]]]:
    """``{id: {keep_ratio: (line number, reasoning)}}`` from a JSONL file; one-line errors naming the line."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: no such file (compressed chains: JSONL with id, keep_ratio, reasoning)")
    out: dict[str, dict[float, tuple[int, str]]] = {}
    for lineno, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {lineno}: not JSON ({err.msg})") from None
        missing = [k for k in ("id", "keep_ratio", "reasoning") if k not in row] if isinstance(row, dict) else ["id"]
        if missing:
            raise DataError(f"{path}, line {lineno}: missing field '{missing[0]}'")
        ratio, text = row["keep_ratio"], row["reasoning"]
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise DataError(f"{path}, line {lineno}: keep_ratio {ratio!r} is not a number in (0, 1]")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}, line {lineno}: field 'reasoning' is empty or not text")
        chains = out.setdefault(str(row["id"]), {})
        if float(ratio) in chains:
            raise DataError(f"{path}, line {lineno}: a second chain for id {row['id']} at keep ratio {ratio:g}")
        chains[float(ratio)] = (lineno, text)
    if not out:
        raise DataError(f"{path}: no compressed chains in the file")
    return out


@lru_cache(maxsize=2)
def _rewriter(name: str, device: str):
    from ..models import load_model

    return load_model(name, device)


@dataclass(frozen=True)
class Import:
    """Compressed chains made elsewhere, read from a JSONL file."""

    name: ClassVar[str] = "import"
    help: ClassVar[str] = "compressed chains made elsewhere, read from --compressed FILE (JSONL: id, keep_ratio, reasoning)"
    compressed: str | None = setting(None, "import: JSONL of compressed chains (id, keep_ratio, reasoning) made elsewhere",
                                     path=True)

    def __post_init__(self) -> None:
        if self.compressed is None:
            raise SettingsError("--method import needs --compressed FILE (JSONL: id, keep_ratio, reasoning)")

    def check(self, config) -> None:
        read_compressed(self.compressed)  # the file, line by line, before any model loads

    def prepare(self, model, examples: Sequence, config) -> None:
        chains = read_compressed(self.compressed)
        known = {e.id for e in examples}
        for example_id, by_ratio in chains.items():
            if example_id not in known:
                lineno = min(line for line, _ in by_ratio.values())
                raise DataError(f"{self.compressed}, line {lineno}: id {example_id} is not an example of the data")
        lacking = [e.id for e in examples if e.id not in chains]
        if lacking:
            raise DataError(f"{self.compressed}: no compressed chain for example {lacking[0]} "
                            f"({len(lacking)} of {len(known)} examples have none)")

    def compress(self, model, example, n: int, config) -> dict[float, str]:
        return {ratio: text for ratio, (_, text) in read_compressed(self.compressed)[example.id].items()}


@dataclass(frozen=True)
class Rewrite:
    """An instruction model rewrites the chain within a token budget."""

    name: ClassVar[str] = "rewrite"
    help: ClassVar[str] = "an instruction model rewrites the chain within the token budget (--rewriter, default: the pruner)"
    rewriter: str | None = setting(None, "rewrite: the instruction model that rewrites (default: the pruner model)",
                                   path=True)

    def prepare(self, model, examples: Sequence, config) -> None:
        if self.rewriter:  # a bad --rewriter fails before any work
            if model.has_weights:
                _rewriter(self.rewriter, str(model.device))
            else:  # a cluster's driver: its workers load the rewriter
                from ..models import resolve_model_path

                resolve_model_path(self.rewriter)

    def compress(self, model, example, n: int, config) -> dict[float, str]:
        import torch

        from ..schema import COMPARE_KEEPS

        rewriter = _rewriter(self.rewriter, str(model.device)) if self.rewriter else model
        out = {}
        for ratio in [config.keep_ratio] if config.keep_ratio else COMPARE_KEEPS:
            budget = max(1, round(ratio * n))
            message = REWRITE_PROMPT.format(budget=budget, question=example.question, reasoning=example.reasoning)
            ids = rewriter.tokenizer.apply_chat_template([{"role": "user", "content": message}],
                                                         add_generation_prompt=True, return_tensors="pt",
                                                         return_dict=True)["input_ids"].to(rewriter.device)
            with torch.inference_mode():
                reply = rewriter.hf.generate(ids, max_new_tokens=budget, do_sample=False,
                                             pad_token_id=rewriter.tokenizer.eos_token_id)
            text = rewriter.tokenizer.decode(reply[0, ids.shape[1]:], skip_special_tokens=True).strip()
            kept = model.tokenizer(text, add_special_tokens=False)["input_ids"][:budget]  # the pruner's budget
            out[ratio] = model.tokenizer.decode(kept).strip()
        return out


for _method in (Import, Rewrite):
    register(_method)
