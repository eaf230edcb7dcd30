"""Part files and tables of a run (``prunelens.store``): atomic writes, shards at once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from prunelens.cli import main


def test_outputs_follow_the_umask_without_changing_it(tmp_path, monkeypatch):

    from prunelens.store import atomic_write

    old = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("atomic_write changed the process umask"))
        path = atomic_write(tmp_path / "out.txt", lambda tmp: tmp.write_text("x"))
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert path.read_text() == "x" and (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left


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
@pytest.mark.slow  # end to end: the fast lane has its parts
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
