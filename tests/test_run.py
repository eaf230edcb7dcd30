"""``Run``: one run directory as a notebook works with it; one chain in memory; options from the methods."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from prunelens import Run, prune
from prunelens.errors import RunError
from prunelens.features import features_run
from prunelens.pruning import prune_examples

ROOT = Path(__file__).resolve().parents[1]


def test_a_committed_run_opens_as_it_is():
    """A run directory made before Run existed reads through it unchanged."""
    run = Run(ROOT / "experiments" / "gsm8k-61-120-random")
    raw = pd.read_parquet(run.path / "examples.parquet")
    assert run.exists and list(run.examples().example_id) == list(raw.example_id)
    assert run.config["prune"]["method"] == "random" and run.model_name == "smollm2-135m"
    half = run.chains_at(0.5)
    assert len(half) == len(raw) and (half.n_kept == [int(round(0.5 * n)) for n in half.n_tokens]).all()


def test_survival_difference_of_two_runs_reads_each_runs_own_survival(full_run, tiny_run):
    """Greedy against random on the same chains: each side's ratio is what the run's own survival
    table says at keep 0.5, the difference is theirs; a run without categories is named."""
    from prunelens.analysis import category_survival

    greedy, random = Run(full_run["greedy"]), Run(full_run["random"])
    table = greedy.survival_difference(random).set_index("category")
    alone = {name: category_survival(run.tokens(), ratios=[0.5]).set_index("category")["ratio"]
             for name, run in (("greedy", greedy), ("random", random))}
    assert len(table) and (table.examples == 6).all()
    assert np.allclose(table.ratio, alone["greedy"].reindex(table.index))
    assert np.allclose(table.ratio_other, alone["random"].reindex(table.index))
    assert np.allclose(table.difference, table.ratio - table.ratio_other)
    with pytest.raises(RunError, match="run annotate on it first"):
        greedy.survival_difference(tiny_run("truncate", chains=2))  # a run no test annotates


def test_tokens_join_order_features_and_categories(tiny_model, short_chains, tmp_path):
    run = Run(tmp_path / "run")
    assert not run.exists
    summary = run.prune(tiny_model, short_chains[:2], "greedy", show_progress=False)
    assert summary["done"] == 2
    run.features(show_progress=False)  # the run's own model, loaded by the name it recorded
    run.annotate()
    tokens = run.tokens()
    for table in ("tokens", "features", "categories"):
        part = pd.read_parquet(run.path / f"{table}.parquet")
        merged = tokens.merge(part, on=["example_id", "position"], suffixes=("", "_part"))
        assert len(merged) == len(part) == len(tokens)
        for column in [c for c in part.columns if c not in ("example_id", "position") and c in tokens]:
            assert merged[column].astype(str).equals(merged[column if column + "_part" not in merged else
                                                           column + "_part"].astype(str)), column
    assert {"rank_norm", "attn_answer.mean", "category"} <= set(tokens.columns)


def test_later_stages_follow_the_run_model_however_it_is_written(tiny_model, model, short_chains, tmp_path,
                                                                  monkeypatch):
    """A run made with a model directory: features find that model without being told, and accept it
    written as a relative path or with a trailing slash; another model is refused in one line."""
    folder = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model.path, folder)
    run = Run(tmp_path / "run")
    run.prune(str(folder), short_chains[:1], "truncate", show_progress=False)
    assert run.model_name == str(folder.resolve())
    monkeypatch.chdir(tmp_path)
    run.features("models/tiny/", show_progress=False)
    assert run.has("features")
    with pytest.raises(RunError, match="pass --model to match"):
        run.features(model)


def test_one_chain_in_memory_is_what_a_run_holds(tiny_model, short_chains, tmp_path):
    """prune(model, example): its table equals the tokens.parquet a run writes for that chain, its
    features equal the features stage's, and its chain at a ratio is the run's."""
    example = short_chains[3]
    result = prune(tiny_model, example, method="greedy")
    run = tmp_path / "run"
    prune_examples(tiny_model, [example], run, method="greedy", show_progress=False)
    features_run(tiny_model, run, show_progress=False)
    tokens = pd.read_parquet(run / "tokens.parquet")
    pd.testing.assert_frame_equal(result.table().drop(columns="drop_first"), tokens.drop(columns="drop_first"))
    assert np.allclose(result.table().drop_first.astype(float), tokens.drop_first.astype(float), atol=1e-5)
    feats = pd.read_parquet(run / "features.parquet")
    mine = result.features()
    for column in ("attn_answer.mean", "surprisal", "mlp_sparsity.L1", "position_norm"):
        assert np.allclose(mine[column], feats[column], atol=1e-5), column
    assert result.chain_at(0.5) == Run(run).chains_at(0.5).reasoning.iloc[0]


def test_prune_options_come_from_the_methods_own_settings(monkeypatch):
    """A method registered with a setting gets its command-line option, with its help and type,
    without a line of the CLI; PruneConfig records it under its name and refuses a bad value."""
    from prunelens.cli import build_parser
    from prunelens.errors import SettingsError
    from prunelens.pruning import METHODS, Ordering, PruneConfig, Ranking, setting

    @dataclass(frozen=True)
    class EveryOther(Ordering):
        name: ClassVar[str] = "every-other"
        help: ClassVar[str] = "delete every other token"
        stride: int = setting(2, "every-other: delete one token in this many")

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.stride < 1:
                raise SettingsError(f"stride {self.stride} is not positive")

        def rank(self, engine, layout, config, n_delete, example_id, progress) -> Ranking:
            return Ranking(list(range(0, len(layout.reasoning_ids), self.stride))[:n_delete])

    monkeypatch.setitem(METHODS, "every-other", EveryOther)
    args = build_parser().parse_args(["prune", "--out", "x", "--method", "every-other", "--stride", "3"])
    assert args.stride == 3 and args.method == "every-other"
    config = PruneConfig(method="every-other", stride=3)
    assert config.method == EveryOther(stride=3) and config.recorded()["stride"] == 3
    assert PruneConfig().recorded()["stride"] is None  # another method's setting: recorded as unused
    with pytest.raises(SettingsError, match="stride 0 is not positive"):
        PruneConfig(method="greedy", stride=0)  # checked whichever method is chosen


def test_a_run_resumes_from_its_data_wherever_the_file_lies(tiny_model, short_chains, tmp_path):
    """A data file is recorded by name and content, not by where it lay: a copy elsewhere resumes the
    run; other content under the same name is refused; a run recorded by path (before ids) resumes."""
    import json

    from prunelens.data import source_id

    rows = [{"id": e.id, "question": e.question, "reasoning": e.reasoning, "answer": e.answer} for e in short_chains[:2]]
    first, moved = tmp_path / "a" / "chains.jsonl", tmp_path / "b" / "chains.jsonl"
    for path in (first, moved):
        path.parent.mkdir()
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = Run(tmp_path / "run")
    run.prune(tiny_model, f"jsonl:{first}", "truncate", limit=1, show_progress=False)
    assert run.config["prune"]["data"] == source_id(f"jsonl:{first}") and str(tmp_path) not in run.config["prune"]["data"]
    assert run.prune(tiny_model, f"jsonl:{moved}", "truncate", show_progress=False)["done"] == 1  # the second chain
    moved.write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]))
    with pytest.raises(RunError, match="data="):
        run.prune(tiny_model, f"jsonl:{moved}", "truncate", show_progress=False)
    record = json.loads((run.path / "prune.json").read_text())
    (run.path / "prune.json").write_text(json.dumps({**record, "data": f"jsonl:{first}"}))  # as runs recorded it before
    assert run.prune(tiny_model, f"jsonl:{first}", "truncate", show_progress=False)["resumed"] == 2
