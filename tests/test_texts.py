"""Text methods (``prunelens.pruning.texts``): import and rewrite."""

import json

import pandas as pd
import pytest

from prunelens.errors import RunError
from prunelens.features import features_run
from prunelens.layout import render
from prunelens.pruning import prune_examples


def _write_compressed(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_reads_compressed_chains_and_scores_them_exactly(tiny_model, short_chains, tmp_path):
    """An imported chain is read back through chains_at, and its objective is a full forward pass over it."""
    from dataclasses import replace

    from prunelens.analysis import normalised_objective
    from prunelens.pruning import NaiveReference
    from prunelens.schema import chains_at, read_table

    chains = short_chains[:3]
    texts = {(e.id, r): " ".join(e.reasoning.split()[: max(1, int(len(e.reasoning.split()) * r))])
             for e in chains for r in (0.5, 0.25)}
    path = _write_compressed(tmp_path / "c.jsonl", [{"id": i, "keep_ratio": r, "reasoning": t} for (i, r), t in texts.items()])
    run = tmp_path / "run"
    prune_examples(tiny_model, chains, run, method="import", compressed=str(path), show_progress=False)
    naive = NaiveReference(tiny_model)
    for ratio in (0.5, 0.25):
        table = chains_at(run, ratio).set_index("example_id")
        for e in chains:
            assert table.loc[e.id, "reasoning"] == texts[(e.id, ratio)]
            layout = render(replace(e, reasoning=texts[(e.id, ratio)]), tiny_model.tokenizer)
            assert table.loc[e.id, "n_kept"] == len(layout.reasoning_ids)
            stored = read_table(run, "texts").set_index(["example_id", "keep_ratio"]).loc[(e.id, ratio), "objective"]
            expected = naive.objectives([layout.ids], len(layout.prompt_ids), len(layout.post_ids))[0]
            assert stored == pytest.approx(expected, abs=1e-5)
    assert chains_at(run, 1.0).set_index("example_id").loc[chains[0].id, "reasoning"] == chains[0].reasoning
    with pytest.raises(RunError, match="no compressed chain at keep ratio 0.75 \\(it has 0.25, 0.5\\)"):
        chains_at(run, 0.75)
    with pytest.raises(RunError, match="holds compressed texts, not a deletion order"):
        features_run(tiny_model, run, show_progress=False)
    examples = read_table(run, "examples")  # the normalised objective reads a text run like any other
    assert normalised_objective(examples, examples, examples.assign(objective_trajectory=[
        [t[0] - 1.0] * len(t) for t in examples.objective_trajectory]))["normalised@0.5"].eq(1.0).all()


def test_import_names_the_line_of_a_bad_file(tiny_model, short_chains, tmp_path):
    from prunelens.errors import DataError
    from prunelens.pruning.texts import read_compressed

    chains = short_chains[:2]
    good = [{"id": e.id, "keep_ratio": 0.5, "reasoning": "x = 1"} for e in chains]
    for rows, message in [(good + [{"id": "nope", "keep_ratio": 0.5, "reasoning": "y"}], "line 3: id nope is not an example"),
                          (good[:1] + [{"id": chains[1].id, "reasoning": "y"}], "line 2: missing field 'keep_ratio'"),
                          (good[:1] + [{"id": chains[1].id, "keep_ratio": 1.5, "reasoning": "y"}], "line 2: keep_ratio 1.5"),
                          (good[:1], f"no compressed chain for example {chains[1].id}")]:
        path = _write_compressed(tmp_path / f"bad{len(message)}.jsonl", rows)
        read_compressed.cache_clear()
        with pytest.raises(DataError, match=message):
            prune_examples(tiny_model, chains, tmp_path / f"run{len(message)}", method="import",
                           compressed=str(path), show_progress=False)
        assert not (tmp_path / f"run{len(message)}" / "examples.parquet").exists()  # nothing half-written


def test_rewrite_on_a_tiny_model_makes_a_run_downstream_stages_read(tiny_model, short_chains, tmp_path):
    from prunelens.schema import chains_at, read_table

    run = tmp_path / "run"
    prune_examples(tiny_model, short_chains[:2], run, method="rewrite", show_progress=False)
    texts = read_table(run, "texts")
    assert sorted(set(texts.keep_ratio)) == [0.25, 0.5, 0.75] and len(texts) == 6
    n = read_table(run, "examples").set_index("example_id").n_reasoning
    assert (texts.n_tokens <= (texts.keep_ratio * texts.example_id.map(n)).round().clip(lower=1)).all()
    assert len(chains_at(run, 0.5)) == 2


def test_agree_gives_a_text_run_its_normalised_objective(tiny_model, short_chains, tmp_path):
    """(text - random) / (greedy - random) at keep 0.5, from the stored objectives by hand."""
    from prunelens.cli import main
    from prunelens.ops import n_to_delete
    from prunelens.schema import read_table

    chains = short_chains[:3]
    path = _write_compressed(tmp_path / "c.jsonl", [{"id": e.id, "keep_ratio": 0.5, "reasoning": e.reasoning[: len(e.reasoning) // 2]}
                                                  for e in chains])
    runs = {m: tmp_path / m for m in ("greedy", "random", "import")}
    for method, run in runs.items():
        prune_examples(tiny_model, chains, run, method=method, show_progress=False,
                       **({"compressed": str(path)} if method == "import" else {}))
    assert main(["agree", str(runs["greedy"]), str(runs["import"]), "--random", str(runs["random"]),
                 "--out", str(tmp_path / "agree.csv")]) == 0
    table = pd.read_csv(tmp_path / "agree.csv").set_index("example_id")
    texts = read_table(runs["import"], "texts").set_index("example_id").objective
    at = {m: read_table(runs[m], "examples").set_index("example_id") for m in ("greedy", "random")}
    for e in chains:
        k = n_to_delete(at["greedy"].loc[e.id, "n_reasoning"], 0.5)
        g, r = (at[m].loc[e.id, "objective_trajectory"][k] for m in ("greedy", "random"))
        assert table.loc[e.id, "normalised@0.5"] == pytest.approx((texts[e.id] - r) / (g - r))
    assert main(["agree", str(runs["greedy"]), str(runs["import"])]) == 2  # no order to agree on
