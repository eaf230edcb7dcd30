"""Run a stage's examples on a Ray cluster (``--ray local``, ``--ray auto``, ``--ray HOST:PORT``).

Each worker is a Ray actor that loads the model once, then takes examples one at a time and
writes their part files into the run directory itself, exactly as a local run or a shard does
(the directory must be on storage every node sees). The driver only hands out examples, counts
them on one progress bar and merges once at the end.

Faults: a worker that dies (killed, out of memory) is restarted by Ray and its example handed to
the next free worker, at most ``retries`` times per example; a worker whose model cannot load
stops the run with that error. An example that fails on bad input (the stage says which errors
are that) comes back as its one-line error and is never retried; any other user error (a missing
pruner file, a model mismatch) stops the run, with ``skip_bad`` too. A killed driver loses only
the examples in flight: the same command resumes from the part files. Paths reach the workers
absolute, and ``PRUNELENS_CACHE`` and the Hugging Face offline settings travel with them.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import RunError, SettingsError, USER_ERRORS
from .ops import progress_bar


ENV = ("PRUNELENS_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # passed on to the workers


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the driver's model: name (as recorded), where it is, device,
    dtype and CPU threads."""

    name: str
    path: str  # ``name``, or its absolute directory when it is a local one (workers have another cwd)
    device: str
    dtype: str  # a torch dtype's name: float32, bfloat16, ...
    threads: int | None = None

    def load(self):
        from dataclasses import replace

        import torch

        from .models import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        return replace(load_model(self.path, self.device, getattr(torch, self.dtype)), name=self.name)


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
            raise SettingsError("--ray needs an address: local, auto or HOST:PORT")
        if self.workers is not None and self.workers < 1:
            raise SettingsError(f"--ray-workers {self.workers} is not a positive number")
        if self.cpus < 1:
            raise SettingsError(f"--threads {self.cpus} is not a positive number")
        if self.retries < 0:
            raise SettingsError(f"retries {self.retries} is negative")


def connect(options: RayOptions) -> str:
    """Join or start the cluster (once per process); return the device its workers use."""
    try:
        import ray
    except ImportError:
        raise RunError("--ray needs Ray: pip install 'prunelens[ray]'") from None
    if not ray.is_initialized():
        env = {"env_vars": {k: os.environ[k] for k in ENV if k in os.environ}}
        if options.address == "local":
            ray.init(include_dashboard=False, logging_level="warning", runtime_env=env)
        else:
            try:
                ray.init(address=options.address, logging_level="warning", runtime_env=env)
            except ConnectionError as err:
                raise RunError(f"--ray {options.address}: no Ray cluster there ({err})") from None
    return options.device or ("cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu")


def spec_of(model, options: RayOptions) -> ModelSpec:
    """How workers load ``model``: on its device, or (a shape-only model) on the cluster's."""
    from pathlib import Path

    device = model.device.type if model.has_weights else connect(options)
    local = Path(model.name).expanduser()
    path = str(local.resolve()) if local.is_dir() else model.name
    return ModelSpec(model.name, path, device, str(model.dtype).removeprefix("torch."), options.cpus)


class _Worker:
    """One actor: the model, loaded once, and the examples handed to it."""

    def __init__(self, spec: ModelSpec):
        from transformers.utils import logging

        logging.disable_progress_bar()  # no weight-loading bars from every worker on the driver's screen
        self.model = spec.load()

    def ping(self) -> None:
        """Answers once the actor is up (after a restart, with its model loaded again)."""

    def run(self, task: Callable[[Any, Any], None], payload: Any, bad: tuple[type, ...]) -> tuple[str, str] | None:
        """Do one example. A user error comes back as ``("bad", line)`` when it is one of ``bad`` (the
        example's own input), else ``("fatal", line)``; never retried. Anything else is a bug: it raises."""
        try:
            task(self.model, payload)
        except USER_ERRORS as err:
            return ("bad" if isinstance(err, bad) else "fatal", str(err) or type(err).__name__)
        return None


def _actors(options: RayOptions, spec: ModelSpec, n_items: int) -> list:
    import ray

    resources = ray.cluster_resources()
    if spec.device == "cuda":
        room, need = int(resources.get("GPU", 0)), {"num_gpus": 1, "num_cpus": 1}
    else:
        room, need = int(resources.get("CPU", 1)) // options.cpus, {"num_cpus": options.cpus}
    if room < 1:
        what = "a GPU" if spec.device == "cuda" else f"{options.cpus} CPUs"
        raise RunError(f"the Ray cluster has no room for a worker with {what} (it has {dict(resources)}): "
                       "use fewer --threads, or --device cpu")
    n = min(room, options.workers or room, n_items)
    actor = ray.remote(max_restarts=options.retries, max_task_retries=0, **need)(_Worker)
    return [actor.remote(spec) for _ in range(n)]


def run_examples(options: RayOptions, spec: ModelSpec, task: Callable[[Any, Any], None],
                 items: Sequence[tuple[str, Any]], *, bad: tuple[type, ...] = (), skip_bad: bool = False,
                 desc: str = "", show_progress: bool = True) -> dict[str, Any]:
    """Call ``task(model, payload)`` on the cluster for every ``(example_id, payload)`` of ``items``.

    ``task`` writes the example's parts (it runs on a worker); ``bad`` are the errors that mean an
    example's own input is bad. Returns ``done`` (examples finished), ``skipped`` (one-line errors of
    bad examples, with ``skip_bad``), ``retried`` (hand-outs after a worker died) and ``workers``.
    A bad example without ``skip_bad``, or any other user error, stops the run with RunError once the
    examples in flight end (their parts are kept).
    """
    if not items:
        return {"done": 0, "skipped": [], "retried": 0, "workers": 0}
    import ray
    from ray.exceptions import ActorUnavailableError, OutOfMemoryError, RayActorError, WorkerCrashedError

    connect(options)
    actors = _actors(options, spec, len(items))
    task = ray.put(task)  # pickled once (a distill task carries every training set), not per hand-out
    idle, pending, busy = deque(actors), deque(items), {}
    deaths: Counter = Counter()
    attempts: Counter = Counter()
    skipped: list[str] = []
    stop: str | None = None
    retried = done = 0
    bar = progress_bar(total=len(items), desc=f"{desc} on {len(actors)} Ray workers", unit="ex",
                       disable=not show_progress)

    def failed(example_id: str, kind: str, message: str) -> None:
        nonlocal stop
        named = message.startswith(f"{example_id}:") or f"example {example_id}:" in message
        line = message if named else f"{example_id}: {message}"
        if kind == "bad" and skip_bad:
            skipped.append(line)
        elif stop is None:
            stop = line + (" (fix it and run again; --skip-bad, where the command has it, leaves such "
                           "examples out)" if kind == "bad" else "")
            pending.clear()  # hand out nothing more; the examples in flight finish and are kept

    def probe(actor) -> None:
        """Hand ``actor`` nothing until it answers: a restarting actor fails every call at once."""
        probes[actor.ping.remote()] = actor

    def not_loaded(err: Exception) -> None:
        """A worker whose model did not load stops the run: every worker would fail the same way."""
        if getattr(err, "actor_init_failed", False):
            raise RunError(f"a Ray worker could not load {spec.path}: {_first_line(err)}") from None

    probes: dict = {}
    try:
        while pending or busy:
            while pending and idle:
                actor, item = idle.popleft(), pending.popleft()
                busy[actor.run.remote(task, item[1], bad)] = (actor, item)
            if not busy and not probes:
                raise RunError(f"every Ray worker died more than {options.retries} times: "
                               f"{len(pending)} example(s) left undone (out of memory?)")
            [ref], _ = ray.wait(list(busy) + list(probes), num_returns=1)
            if ref in probes:
                actor = probes.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(actor)  # restarted, model loaded
                except ActorUnavailableError:
                    time.sleep(0.2)
                    probe(actor)
                except RayActorError as err:
                    not_loaded(err)
                continue  # dead for good: dropped
            actor, item = busy.pop(ref)
            try:
                error = ray.get(ref)
            except (RayActorError, WorkerCrashedError, OutOfMemoryError) as err:
                not_loaded(err)
                deaths[actor] += 1
                attempts[item[0]] += 1
                if deaths[actor] <= options.retries:
                    probe(actor)  # Ray restarts it (the model loads again)
                if attempts[item[0]] > options.retries:
                    failed(item[0], "bad", f"its worker died {attempts[item[0]]} times (out of memory?): "
                                           f"{_first_line(err)}")
                    bar.update()
                elif stop is None:
                    pending.appendleft(item)  # to the next free worker
                    retried += 1
                continue
            idle.append(actor)
            bar.update()
            if error is not None:
                failed(item[0], *error)
            else:
                done += 1
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor)
    if stop is not None:
        raise RunError(stop)
    return {"done": done, "skipped": skipped, "retried": retried, "workers": len(actors)}


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(err).__name__
