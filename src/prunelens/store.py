"""Tidy Parquet tables of a run directory, written so that work resumes and nothing is half-written.

A stage writes, for each finished example, one part file per table under ``RUN/parts/STAGE/``
(temporary file, then rename), so shards of one run (``--shard i/n``) and the workers of a Ray
cluster may write into one directory at once. ``merge`` joins the parts into ``RUN/TABLE.parquet``,
once, by whoever ran every example (a plain run, a cluster's driver, or ``prunelens merge`` after
the shards); each table is replaced whole, never seen half-written. Merges are not locked: two
running at once (say two plain runs into one directory) may leave the older one's table last,
which the next merge mends. A re-run skips the examples
whose parts exist: a killed run loses at most the examples in flight.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import SettingsError
from .errors import RunError  # noqa: F401  (re-exported: raised here, defined with the other user errors)


def atomic_write(path: Path, write) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # created like any new file, so the process's umask sets its mode (never changed here: other
    # threads may be creating files)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_text(text: str, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def natural_key(text: str) -> list[Any]:
    """Sort key that puts ``gsm8k-2`` before ``gsm8k-10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def _safe(example_id: str) -> str:
    """A file name for ``example_id``: itself when plain, else cleaned plus a stable checksum."""
    if re.fullmatch(r"[A-Za-z0-9._-]+", example_id):
        return example_id
    return re.sub(r"[^A-Za-z0-9._-]", "_", example_id) + f"-{zlib.crc32(example_id.encode()):08x}"


class StageStore:
    """Part files of one stage (``prune``, ``features``, ...) of a run, and their merge."""

    def __init__(self, run: str | Path, stage: str, tables: Sequence[str]):
        self.run = Path(run)
        self.stage = stage
        self.tables = tuple(tables)

    @property
    def parts(self) -> Path:
        return self.run / "parts" / self.stage

    def check_config(self, config: dict[str, Any], ignore: Sequence[str] = (),
                     defaults: dict[str, Any] | None = None) -> None:
        """Record the stage's settings; refuse to resume a run made with different ones.

        The file is made whole under a temporary name and linked into place, which fails if it
        exists: of several processes starting at once, one records and the others compare.
        Keys in ``ignore`` are recorded but may differ on resume; a key the record lacks (a setting
        added after the run was made) counts as its value in ``defaults``, which the run used.
        """
        path = self.run / f"{self.stage}.json"
        self.run.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = atomic_write(self.run / f".{self.stage}.json.{os.getpid()}", lambda t: t.write_text(
                json.dumps(config, indent=2, sort_keys=True)))
            try:
                os.link(tmp, path)
                return
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        old = {**(defaults or {}), **json.loads(path.read_text())}
        diff = {k: (old.get(k), v) for k, v in config.items() if k not in ignore and old.get(k) != v}
        if diff:
            said = ", ".join(f"{k}={a!r} (now {b!r})" for k, (a, b) in diff.items())
            raise RunError(f"{self.run} was made with {said}: use another --out or the same settings")

    def done(self) -> set[str]:
        """Example ids whose parts are all written (the last table is written last)."""
        return set(self.finished_column("example_id"))

    def finished_column(self, column: str) -> dict[str, Any]:
        """``example_id -> column`` (first row) of every finished example's last-written table; a
        column the parts do not have (written by an older version) maps to None."""
        last = self.tables[-1]
        if not self.parts.exists():
            return {}
        import pyarrow.parquet as pq

        values = {}
        for path in self.parts.glob(f"*.{last}.parquet"):
            wanted = list(dict.fromkeys(c for c in ("example_id", column) if c in pq.read_schema(path).names))
            frame = pd.read_parquet(path, columns=wanted)  # only these columns: parts hold whole trajectories
            values[frame["example_id"].iloc[0]] = frame[column].iloc[0] if column in frame else None
        return values

    def write(self, example_id: str, frames: dict[str, pd.DataFrame]) -> None:
        """Write one example's rows for every table, the last table last (it marks the example done)."""
        for table in self.tables:
            write_table(frames[table], self.parts / f"{_safe(example_id)}.{table}.parquet")

    def merge(self) -> dict[str, Path]:
        """Join every finished part into ``RUN/TABLE.parquet`` (rows ordered by example id, position)."""
        done = self.done()
        written = {}
        for table in self.tables:
            frames = [pd.read_parquet(path) for path in sorted(self.parts.glob(f"*.{table}.parquet"))]
            frames = [f for f in frames if len(f) and f["example_id"].iloc[0] in done]
            if not frames:
                continue
            merged = pd.concat(frames, ignore_index=True)
            rank = {eid: i for i, eid in enumerate(sorted(done, key=natural_key))}
            merged.insert(0, "_rank", merged["example_id"].map(rank))
            keys = ["_rank"] + (["position"] if "position" in merged else [])
            merged = merged.sort_values(keys, kind="stable").drop(columns="_rank").reset_index(drop=True)
            written[table] = write_table(merged, self.run / f"{table}.parquet")
        return written


def shard_of(items: Iterable[Any], shard: str | None) -> list[Any]:
    """Items of shard ``i/n`` (every n-th item starting at i); all items when ``shard`` is None."""
    items = list(items)
    if not shard:
        return items
    match = re.fullmatch(r"(\d+)/(\d+)", shard)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise SettingsError(f"shard {shard!r} is not i/n with 0 <= i < n")
    i, n = int(match[1]), int(match[2])
    return items[i::n]
