"""Run a stage's examples on a Ray cluster (``--ray local``, ``--ray auto``, ``--ray HOST:PORT``).

Each worker is a Ray actor that loads the model once, then takes examples one at a time and
writes their part files into the run directory itself, exactly as a local run or a shard does
(the directory must be on storage every node sees). The driver only hands out examples, counts
them on one progress bar and merges once at the end.

Faults: a worker that dies (killed, out of memory) is restarted by Ray and its example handed to
the next free worker, at most ``retries`` times per example; an example that fails on bad input
comes back as its one-line error and is never retried. A killed driver loses only the examples
in flight: the same command resumes from the part files.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import USER_ERRORS, RunError
from .ops import progress_bar


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the driver's model: name, device, dtype and CPU threads."""

    name: str
    device: str
    dtype: str  # a torch dtype's name: float32, bfloat16, ...
    threads: int | None = None

    def load(self):
        import torch

        from .models import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        return load_model(self.name, self.device, getattr(torch, self.dtype))


@dataclass(frozen=True)
class RayOptions:
    """Where the cluster is and how to use it; checked before Ray is imported."""

    address: str  # local (start one in this process), auto, or HOST:PORT of a running head node
    workers: int | None = None  # at most this many actors (default: as many as the cluster's GPUs or CPUs hold)
    cpus: int = 1  # CPUs (torch threads) per worker when the cluster has no GPU
    retries: int = 3  # how often an example is handed out again after its worker died
    device: str | None = None  # the workers' device (default: cuda when the cluster has GPUs, else cpu)

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("--ray needs an address: local, auto or HOST:PORT")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--ray-workers {self.workers} is not a positive number")
        if self.cpus < 1:
            raise ValueError(f"--threads {self.cpus} is not a positive number")
        if self.retries < 0:
            raise ValueError(f"retries {self.retries} is negative")


def connect(options: RayOptions) -> str:
    """Join or start the cluster (once per process); return the device its workers use."""
    try:
        import ray
    except ImportError:
        raise RunError("--ray needs Ray: pip install 'prunelens[ray]'") from None
    if not ray.is_initialized():
        if options.address == "local":
            ray.init(include_dashboard=False, logging_level="warning", log_to_driver=True)
        else:
            try:
                ray.init(address=options.address, logging_level="warning")
            except ConnectionError as err:
                raise RunError(f"--ray {options.address}: no Ray cluster there ({err})") from None
    return options.device or ("cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu")


def spec_of(model, options: RayOptions) -> ModelSpec:
    """How workers load ``model``: on its device, or (a shape-only model) on the cluster's."""
    device = model.device.type if model.has_weights else connect(options)
    return ModelSpec(model.name, device, str(model.dtype).removeprefix("torch."), options.cpus)


class _Worker:
    """One actor: the model, loaded once, and the examples handed to it."""

    def __init__(self, spec: ModelSpec):
        from transformers.utils import logging

        logging.disable_progress_bar()  # no weight-loading bars from every worker on the driver's screen
        self.model = spec.load()

    def run(self, task: Callable[[Any, Any], None], payload: Any) -> str | None:
        """Do one example; its bad-input error comes back as text (not retried), anything else raises."""
        try:
            task(self.model, payload)
        except USER_ERRORS as err:
            return str(err) or type(err).__name__
        return None

    def pid(self) -> int:
        return os.getpid()


def _actors(options: RayOptions, spec: ModelSpec, n_items: int) -> list:
    import ray

    resources = ray.cluster_resources()
    if spec.device == "cuda":
        room, need = int(resources.get("GPU", 0)), {"num_gpus": 1, "num_cpus": 1}
    else:
        room, need = int(resources.get("CPU", 1)) // options.cpus, {"num_cpus": options.cpus}
    n = max(1, min(room, options.workers or room, n_items))
    actor = ray.remote(max_restarts=options.retries, max_task_retries=0, **need)(_Worker)
    return [actor.remote(spec) for _ in range(n)]


def run_examples(options: RayOptions, spec: ModelSpec, task: Callable[[Any, Any], None],
                 items: Sequence[tuple[str, Any]], *, skip_bad: bool = False, desc: str = "",
                 show_progress: bool = True) -> dict[str, Any]:
    """Call ``task(model, payload)`` on the cluster for every ``(example_id, payload)`` of ``items``.

    ``task`` writes the example's parts (it runs on a worker). Returns ``done`` (examples finished),
    ``skipped`` (one-line errors of bad examples, with ``skip_bad``), ``retried`` (hand-outs after a
    worker died) and ``workers``.
    Without ``skip_bad`` a bad example stops the run with RunError once the examples in flight end.
    """
    import ray
    from ray.exceptions import OutOfMemoryError, RayActorError, WorkerCrashedError

    connect(options)
    if not items:
        return {"done": 0, "skipped": [], "retried": 0, "workers": 0}
    actors = _actors(options, spec, len(items))
    idle, pending, busy = deque(actors), deque(items), {}
    deaths: Counter = Counter()
    attempts: Counter = Counter()
    skipped: list[str] = []
    stop: str | None = None
    retried = done = 0
    bar = progress_bar(total=len(items), desc=f"{desc} on {len(actors)} Ray workers", unit="ex",
                       disable=not show_progress)

    def bad(example_id: str, message: str) -> None:
        nonlocal stop
        line = message if example_id in message else f"{example_id}: {message}"
        if skip_bad:
            skipped.append(line)
        elif stop is None:
            stop = line
            pending.clear()  # hand out nothing more; the examples in flight finish and are kept

    try:
        while pending or busy:
            while pending and idle:
                actor, item = idle.popleft(), pending.popleft()
                busy[actor.run.remote(task, item[1])] = (actor, item)
            if not busy:
                raise RunError(f"every Ray worker died more than {options.retries} times: "
                               f"{len(pending)} example(s) left undone (out of memory?)")
            [ref], _ = ray.wait(list(busy), num_returns=1)
            actor, item = busy.pop(ref)
            try:
                error = ray.get(ref)
            except (RayActorError, WorkerCrashedError, OutOfMemoryError):
                deaths[actor] += 1
                attempts[item[0]] += 1
                if deaths[actor] <= options.retries:
                    idle.append(actor)  # Ray restarts it (the model loads again)
                if attempts[item[0]] > options.retries:
                    bad(item[0], f"its worker died {attempts[item[0]]} times (out of memory?)")
                    bar.update()
                elif stop is None:
                    pending.appendleft(item)  # to the next free worker
                    retried += 1
                continue
            idle.append(actor)
            bar.update()
            if error is not None:
                bad(item[0], error)
            else:
                done += 1
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor)
    if stop is not None:
        raise RunError(f"{stop} (the other examples are kept: fix it, or pass --skip-bad, and run again)")
    return {"done": done, "skipped": skipped, "retried": retried, "workers": len(actors)}
