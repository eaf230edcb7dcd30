"""Prune and features on a local Ray cluster of 2 workers give a single process's tables exactly,
survive a worker killed mid-example, and report bad examples by id."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import ray
import torch

from prunelens.cluster import RayOptions
from prunelens.errors import ExampleError, RunError
from prunelens.features import features_run
from prunelens.models import load_model
from prunelens.pruning import prune_examples

TIMING = ["seconds", "rank_seconds"]  # wall clock: the only columns allowed to differ


@pytest.fixture(scope="module")
def cluster():
    """Two CPUs, so two 1-CPU workers; prune_examples joins it instead of starting its own."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error")
    yield RayOptions("local", workers=2)
    ray.shutdown()


@pytest.fixture
def one_thread():
    """The plain run uses one torch thread like each worker, so every float matches bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_tiny(tiny_model):
    """The tiny model as a worker loads it. The session's may have been hooked by the bridge, whose own
    eager attention differs from a fresh model's sdpa in the last float bits."""
    return load_model(str(tiny_model.path), device="cpu")


def _shape_only(model):
    return load_model(str(model.path), device="cpu", weights=False)


def _same_run(plain, other, tables=("examples", "tokens")) -> None:
    for table in tables:
        a, b = (pd.read_parquet(run / f"{table}.parquet") for run in (plain, other))
        a, b = (t.drop(columns=[c for c in TIMING if c in t]) for t in (a, b))
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("method", ["random", "greedy"])
def test_a_ray_run_gives_the_tables_of_a_plain_run(cluster, one_thread, fresh_tiny, short_chains, tmp_path, method):
    tiny_model = fresh_tiny
    examples = short_chains[:5]
    plain = tmp_path / "plain"
    prune_examples(tiny_model, examples, plain, method=method, show_progress=False)
    features_run(tiny_model, plain, show_progress=False)
    driver = _shape_only(tiny_model)  # the driver never holds weights
    summary = prune_examples(driver, examples, tmp_path / "ray", method=method, show_progress=False, ray=cluster)
    features_run(driver, tmp_path / "ray", show_progress=False, ray=cluster)
    assert summary["done"] == 5 and summary["retried"] == 0
    _same_run(plain, tmp_path / "ray", ("examples", "tokens", "features"))


def _kill_first_busy_worker(stop: threading.Event, killed: list) -> None:
    """Kill -9 the first Ray worker seen inside ``_Worker.run`` (Ray titles the process so)."""
    while not stop.is_set() and not killed:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if "_Worker.run" in " ".join(proc.info["cmdline"] or []):
                proc.kill()
                killed.append(proc.info["pid"])
                return
        time.sleep(0.02)


def test_a_worker_killed_mid_example_loses_nothing(cluster, one_thread, fresh_tiny, short_chains, tmp_path):
    tiny_model = fresh_tiny
    examples = short_chains[:6]
    prune_examples(tiny_model, examples, tmp_path / "plain", method="greedy", show_progress=False)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_busy_worker, args=(stop, killed))
    killer.start()
    try:
        summary = prune_examples(_shape_only(tiny_model), examples, tmp_path / "ray", method="greedy",
                                 show_progress=False, ray=cluster)
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was seen at work: the test proved nothing"
    assert summary["retried"] >= 1 and summary["done"] == 6  # the killed worker's example was done again
    _same_run(tmp_path / "plain", tmp_path / "ray")


@pytest.mark.parametrize("on_ray", [False, True])
def test_a_bad_example_is_reported_by_id_or_skipped(request, tiny_model, short_chains, tmp_path, capsys, on_ray):
    run = tmp_path / "run"
    prune_examples(tiny_model, short_chains[:3], run, method="random", show_progress=False)
    rows = pd.read_parquet(run / "examples.parquet")
    bad = rows.example_id[1]
    rows.at[1, "order"] = rows.order[1][:2]  # as if pruned elsewhere to keep 0.9: no chain at keep 0.5
    rows.to_parquet(run / "examples.parquet")
    ray_options = request.getfixturevalue("cluster") if on_ray else None
    with pytest.raises(RunError if on_ray else ExampleError, match=f"{bad}: the run kept more than 0.5"):
        features_run(tiny_model, run, at_keep=[0.5], show_progress=False, ray=ray_options)
    assert not (run / "features.parquet").exists()
    summary = features_run(tiny_model, run, at_keep=[0.5], show_progress=False, ray=ray_options, skip_bad=True)
    assert set(pd.read_parquet(run / "features.parquet").example_id) == set(rows.example_id) - {bad}
    assert any(line.startswith(f"{bad}: the run kept more than 0.5") for line in summary["skipped"])


def test_only_bad_input_is_skipped_and_a_model_that_cannot_load_stops_the_run(cluster, tiny_model, tmp_path):
    """skip_bad leaves out the examples whose error is one the stage calls bad input; another user
    error (a missing file) stops the run; a worker that cannot load its model stops it at once."""
    from prunelens.cluster import ModelSpec, run_examples

    spec = ModelSpec(tiny_model.name, str(tiny_model.path), "cpu", "float32", 1)

    def task(model, payload):
        if payload == "bad":
            raise ExampleError("no chain at keep 0.5")
        if payload == "missing":
            raise RunError("pruner.json is missing")
        (tmp_path / payload).write_text(model.name)

    items = [("a", "a"), ("b", "bad"), ("c", "c")]
    summary = run_examples(cluster, spec, task, items, bad=(ExampleError,), skip_bad=True, show_progress=False)
    assert summary["done"] == 2 and summary["skipped"] == ["b: no chain at keep 0.5"]
    assert (tmp_path / "a").read_text() == tiny_model.name  # the recorded name, not the resolved path
    with pytest.raises(RunError, match="^m: pruner.json is missing$"):
        run_examples(cluster, spec, task, [("m", "missing"), ("d", "d")], bad=(ExampleError,), skip_bad=True,
                     show_progress=False)
    broken = ModelSpec("broken", str(tmp_path / "no-model"), "cpu", "float32", 1)
    with pytest.raises(RunError, match="could not load"):
        run_examples(cluster, broken, task, items, show_progress=False)


def test_distill_on_ray_trains_the_students_of_a_plain_run(cluster, one_thread, tiny_model, short_chains, tmp_path):
    """Each student is a task; training, drift and generations match a plain run's bit for bit."""
    import json

    from prunelens.distill import DistillConfig, EvalSet, distill

    runs = {"greedy": tmp_path / "greedy"}
    prune_examples(tiny_model, short_chains[:4], runs["greedy"], method="random", show_progress=False)
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"id": e.id, "question": e.question, "reasoning": e.reasoning,
                                        "answer": e.answer}) + "\n" for e in short_chains[:7]))
    config = DistillConfig(student=str(tiny_model.path), epochs=1, learning_rate=3e-3, batch_size=2, save_steps=2,
                           max_new_tokens=6, eval_batch=2, kl_texts=2,
                           eval_sets=(EvalSet("held", f"jsonl:{held}", limit=5),))
    plain = distill(runs, tmp_path / "plain", config, show_progress=False)["results"]
    on_ray = distill(runs, tmp_path / "ray", config, show_progress=False, ray=cluster)["results"]
    assert len(plain) == 4  # base, full, answer-only, greedy
    timings = ["train_seconds", "eval_seconds"]
    pd.testing.assert_frame_equal(plain.drop(columns=timings), on_ray.drop(columns=timings))
    for path in (tmp_path / "plain" / "generations").glob("*.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(path).drop(columns="seconds"),
                                      pd.read_parquet(tmp_path / "ray" / "generations" / path.name).drop(columns="seconds"))


def test_prune_on_a_local_ray_cluster_from_the_command_line(tiny_model, short_chains, tmp_path):
    data = _chains(short_chains, tmp_path / "chains.jsonl", 4)
    _finish([subprocess.Popen(_prune(tiny_model, data, tmp_path / "plain"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)])
    proc = subprocess.run(_prune(tiny_model, data, tmp_path / "ray", "--ray", "local", "--ray-workers", "2"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "on 2 Ray workers" in proc.stderr and "pruned 4 example(s)" in proc.stdout
    _same_tables(tmp_path / "plain", tmp_path / "ray")


def _chains(short_chains, path: Path, n: int = 6) -> str:
    with path.open("w") as handle:
        for e in short_chains[:n]:
            handle.write(json.dumps({"id": e.id, "question": e.question, "reasoning": e.reasoning,
                                     "answer": e.answer}) + "\n")
    return f"jsonl:{path}"


def _finish(procs) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err


def _prune(model, data: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "prunelens.cli", "prune", "--model", str(model.path), "--data", data,
            "--method", "random", "--threads", "1", "--out", str(out), *extra]


def _same_tables(a: Path, b: Path) -> None:
    for table in ("examples", "tokens"):
        left, right = (pd.read_parquet(run / f"{table}.parquet").drop(columns=["seconds", "rank_seconds"],
                                                                       errors="ignore") for run in (a, b))
        pd.testing.assert_frame_equal(left, right)


def test_generate_on_ray_draws_what_a_plain_run_draws(cluster, one_thread, tiny_model, tmp_path):
    """Each problem's rounds are seeded from its id, so workers sample exactly what one process does."""
    from prunelens.generation import GenerateConfig, generate_chains

    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + 2?", "answer": str(i + 2)}) + "\n"
                            for i in range(4)))
    config = GenerateConfig(samples=3, round_size=2, max_new_tokens=5, temperature=1.0)
    generate_chains(tiny_model, f"jsonl:{data}", tmp_path / "plain", config, show_progress=False)
    generate_chains(str(tiny_model.path), f"jsonl:{data}", tmp_path / "ray", config, ray=cluster, show_progress=False)
    columns = ["example_id", "sample", "text", "n_tokens", "verdict"]
    plain, on_ray = (pd.read_parquet(tmp_path / d / "attempts.parquet")[columns] for d in ("plain", "ray"))
    pd.testing.assert_frame_equal(plain, on_ray)
