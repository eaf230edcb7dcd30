"""Many writers at once, as real processes: two shards started together into one run directory,
two processes converting the embedded model into one empty cache, and `prune --ray local`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from prunelens.cli import main


def _chains(short_chains, path: Path, n: int = 6) -> str:
    with path.open("w") as handle:
        for e in short_chains[:n]:
            handle.write(json.dumps({"id": e.id, "question": e.question, "reasoning": e.reasoning,
                                     "answer": e.answer}) + "\n")
    return f"jsonl:{path}"


def _prune(model, data: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "prunelens.cli", "prune", "--model", str(model.path), "--data", data,
            "--method", "random", "--threads", "1", "--out", str(out), *extra]


def _finish(procs) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err


def _same_tables(a: Path, b: Path) -> None:
    for table in ("examples", "tokens"):
        left, right = (pd.read_parquet(run / f"{table}.parquet").drop(columns=["seconds", "rank_seconds"],
                                                                       errors="ignore") for run in (a, b))
        pd.testing.assert_frame_equal(left, right)


def test_two_shards_started_together_merge_to_every_example_once(tiny_model, short_chains, tmp_path):
    data = _chains(short_chains, tmp_path / "chains.jsonl")
    out = tmp_path / "run"
    _finish([subprocess.Popen(_prune(tiny_model, data, out, "--shard", shard), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for shard in ("0/2", "1/2")])
    assert not (out / "examples.parquet").exists()  # shards write parts; one merge joins them
    assert main(["merge", str(out)]) == 0
    _finish([subprocess.Popen(_prune(tiny_model, data, tmp_path / "plain"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)])
    ids = pd.read_parquet(out / "examples.parquet").example_id
    assert sorted(ids) == sorted(e.id for e in short_chains[:6])
    _same_tables(tmp_path / "plain", out)


def test_prune_on_a_local_ray_cluster_from_the_command_line(tiny_model, short_chains, tmp_path):
    data = _chains(short_chains, tmp_path / "chains.jsonl", 4)
    _finish([subprocess.Popen(_prune(tiny_model, data, tmp_path / "plain"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)])
    proc = subprocess.run(_prune(tiny_model, data, tmp_path / "ray", "--ray", "local", "--ray-workers", "2"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "on 2 Ray workers" in proc.stderr and "pruned 4 example(s)" in proc.stdout
    _same_tables(tmp_path / "plain", tmp_path / "ray")


def test_two_processes_converting_the_embedded_model_at_once_both_succeed(tmp_path):
    code = ("from prunelens.models import load_model; import torch; m = load_model(); "
            "print(m.path, m.hf(torch.tensor([[1, 2, 3]])).logits.shape[-1])")
    env = {**os.environ, "PRUNELENS_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        outs.append(out.split())
    assert outs[0] == outs[1] == [str(tmp_path / "cache" / "smollm2-135m"), "49152"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["smollm2-135m"]  # no temporary left
