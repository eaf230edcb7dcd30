"""Pure helpers shared by pruning, features and analysis; this module imports nothing heavy.

- ``n_to_delete``: how many tokens go at a keep ratio (the one rounding rule of the toolkit);
- ``pick``: the best of a list of scores, ties to the earliest position;
- ``trajectory_grid``: the states a baseline's trajectory is scored at by default;
- ``token_logprobs``: log p(target) from logits, in float32;
- ``pruned_ids``: the token ids of a chain with some reasoning tokens kept;
- ``kept_positions``: the positions a deletion order keeps at a keep ratio;
- ``progress_bar``: tqdm's automatic bar, quiet about a missing notebook widget;
- ``set_threads``: torch's CPU threads for a process, or a shard's share of the cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

TIE_TOL = 1e-6  # objectives this close to the best count as tied; the earliest position wins
GRID_STEP = 0.05  # baselines' trajectories are scored at every 0.05 of keep ratio by default


def progress_bar(*args, **kwargs):
    """``tqdm.auto.tqdm``: a widget in Jupyter when ipywidgets is there, else text, without the warning
    ``tqdm.auto`` prints when it falls back."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        from tqdm.auto import tqdm
    return tqdm(*args, **kwargs)


def set_threads(threads: int | None, shard: str | None = None) -> None:
    """Torch threads: ``threads``, else each of n shards (``shard`` ``i/n``) takes 1/n of the cores
    (shards slow each other down many times over when each takes them all); neither: torch's own."""
    import os

    import torch

    if threads is None and shard:
        threads = max(1, (os.cpu_count() or 1) // int(shard.split("/")[1]))
    if threads is not None:
        if threads < 1:
            from .errors import SettingsError

            raise SettingsError(f"--threads {threads} is not a positive number")
        torch.set_num_threads(threads)


def n_to_delete(n: int, keep_ratio: float) -> int:
    """How many of ``n`` tokens go so that ``keep_ratio`` of them stay (rounded to nearest)."""
    if not 0.0 <= keep_ratio <= 1.0:
        from .errors import SettingsError

        raise SettingsError(f"keep ratio {keep_ratio} is not between 0 and 1")
    return n - int(round(keep_ratio * n))


def kept_positions(example_id: str, order: Sequence[int], n: int, keep_ratio: float) -> list[int]:
    """The positions of ``n`` tokens still there once a deletion ``order`` reaches ``keep_ratio``
    (token by token; ``schema.present_at`` keeps a cut word whole). An ``ExampleError`` where the
    order stops before that ratio."""
    k = n_to_delete(n, keep_ratio)
    if len(order) < k:
        from .errors import ExampleError

        raise ExampleError(f"{example_id}: the run kept more than {keep_ratio:g} of the tokens (it stopped "
                           f"before keep ratio {keep_ratio:g}): prune with a lower --keep-ratio")
    gone = set(order[:k])
    return [j for j in range(n) if j not in gone]


def trajectory_grid(n: int, n_deleted: int, step: float = GRID_STEP) -> list[int]:
    """Deletion counts at which a grid trajectory is scored: every ``step`` of keep ratio of ``n``
    tokens, and the run's last state (``n_deleted``)."""
    ratios = [round(1 - i * step, 10) for i in range(int(round(1 / step)) + 1)]
    return sorted({k for k in (n_to_delete(n, r) for r in ratios) if k <= n_deleted} | {0, n_deleted})


def pick(scores: Sequence[float], tie_tol: float = TIE_TOL) -> int:
    """Index of the best score; scores within ``tie_tol`` of the best count as tied, earliest wins."""
    best = max(scores)
    return next(i for i, s in enumerate(scores) if s >= best - tie_tol)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per position: ``logits[..., t, :]`` scores ``targets[..., t]`` (float32; float64
    for a float64 model)."""
    logits = logits if logits.dtype.itemsize == 8 else logits.float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def pruned_ids(prompt: Sequence[int], reasoning: Sequence[int], post: Sequence[int],
               kept: Sequence[int]) -> list[int]:
    """``prompt + [reasoning[k] for k in kept] + post``: the sequence every stage scores."""
    return list(prompt) + [reasoning[k] for k in kept] + list(post)
