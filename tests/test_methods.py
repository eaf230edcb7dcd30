"""Issue 12 methods against independent computations on a tiny model: learned, llmlingua, import, rewrite."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from prunelens.errors import RunError
from prunelens.features import features_run
from prunelens.layout import render
from prunelens.pruning import prune, prune_examples
from prunelens.pruning.learned import ESTIMATOR, META, fit_pruner, load_pruner


def test_learned_order_is_the_predicted_rank_of_the_features_stage(tiny_model, short_chains, tiny_greedy_run, tiny_pruner):
    """The order `learned` gives a chain sorts the estimator's predictions on the features that the
    features stage wrote for that chain: inference sees exactly the features the pruner was fitted on."""
    pruner = load_pruner(tiny_pruner)
    assert pruner.info["chains"] == 6 and pruner.model == tiny_model.name
    assert set(pruner.info["cv"]) == {"ridge", "boosting"} and pruner.info["chosen"] in pruner.info["cv"]
    features = pd.read_parquet(tiny_greedy_run / "features.parquet")
    for example in short_chains[:2]:
        rows = features[features.example_id == example.id].sort_values("position")
        predicted = pruner.estimator.predict(rows[pruner.columns].to_numpy(float))
        expected = sorted(range(len(rows)), key=lambda j: predicted[j])
        order = prune(tiny_model, render(example, tiny_model.tokenizer), method="learned", pruner=str(tiny_pruner)).order
        assert order == expected


def test_learned_in_two_passes_reranks_the_chain_the_first_pass_left(tiny_model, short_chains, tiny_greedy_run,
                                                                     tiny_pruner):
    """passes=2: the first half of the deletions sorts the predictions on the features stage's table
    of the whole chain; the rest sorts fresh predictions on the features of the chain left then."""
    from prunelens.hooked import token_features

    pruner = load_pruner(tiny_pruner)
    example = short_chains[0]
    layout = render(example, tiny_model.tokenizer)
    rows = pd.read_parquet(tiny_greedy_run / "features.parquet").query("example_id == @example.id").sort_values("position")
    n = len(rows)
    first = pruner.estimator.predict(rows[pruner.columns].to_numpy(float))
    gone = sorted(range(n), key=lambda j: first[j])[: n // 2]
    left = [j for j in range(n) if j not in gone]
    again = token_features(tiny_model, layout.prompt_ids, [layout.reasoning_ids[j] for j in left], layout.post_ids,
                           [layout.token_texts[j] for j in left])
    second = pruner.estimator.predict(np.column_stack([np.asarray(again[c], float) for c in pruner.columns]))
    expected = gone + [left[i] for i in sorted(range(len(left)), key=lambda i: second[i])]
    order = prune(tiny_model, layout, method="learned", pruner=str(tiny_pruner), passes=2).order
    assert order == expected
    assert order != prune(tiny_model, layout, method="learned", pruner=str(tiny_pruner)).order  # it did re-rank


def test_a_run_made_before_a_setting_existed_resumes_at_its_default(tiny_model, short_chains, tiny_pruner, tmp_path):
    out = tmp_path / "run"
    prune_examples(tiny_model, short_chains[:1], out, method="learned", pruner=str(tiny_pruner), show_progress=False)
    recorded = json.loads((out / "prune.json").read_text())
    del recorded["passes"]  # as written before passes was added: it ranked in one pass
    (out / "prune.json").write_text(json.dumps(recorded))
    with pytest.raises(RunError, match="passes=1 \\(now 2\\)"):
        prune_examples(tiny_model, short_chains[:2], out, method="learned", pruner=str(tiny_pruner), passes=2,
                       show_progress=False)
    again = prune_examples(tiny_model, short_chains[:2], out, method="learned", pruner=str(tiny_pruner),
                           show_progress=False)
    assert (again["resumed"], again["done"]) == (1, 1)


def test_pruner_round_trips_through_its_files(tiny_model, short_chains, tiny_greedy_run, tiny_pruner, tmp_path):
    first = load_pruner(tiny_pruner)
    copy = first.save(tmp_path / "copy")
    again = load_pruner(copy)
    assert again.columns == first.columns and again.info == first.info
    layout = render(short_chains[7], tiny_model.tokenizer)
    orders = [prune(tiny_model, layout, method="learned", pruner=str(d)).order for d in (tiny_pruner, copy)]
    assert orders[0] == orders[1] and sorted(orders[0]) == list(range(len(layout.reasoning_ids)))
    assert json.loads((copy / META).read_text())["format"] == 1


def test_fit_and_load_refuse_what_they_cannot_use(tiny_model, short_chains, tiny_greedy_run, tmp_path):
    random_run = tmp_path / "random"
    prune_examples(tiny_model, short_chains[:2], random_run, method="random", show_progress=False)
    with pytest.raises(RunError, match="learns from exact greedy orders"):
        fit_pruner([random_run])
    bare = tmp_path / "bare"
    prune_examples(tiny_model, short_chains[:2], bare, method="greedy", show_progress=False)
    with pytest.raises(RunError, match="has no features: run `prunelens features"):
        fit_pruner([bare])
    features_run(tiny_model, bare, show_progress=False)
    prune_examples(tiny_model, short_chains[:3], bare, method="greedy", show_progress=False)  # one chain more
    with pytest.raises(RunError, match="1 chain.s. pruned after its features were made"):
        fit_pruner([bare])
    with pytest.raises(RunError, match="share example ids"):
        fit_pruner([tiny_greedy_run, tiny_greedy_run])
    ids = sorted(pd.read_parquet(tiny_greedy_run / "examples.parquet").example_id, key=lambda i: int(i.split("-")[1]))
    assert fit_pruner([tiny_greedy_run], models=("ridge",), limit=3).info["example_ids"] == ids[:3]  # the rest held out
    with pytest.raises(RunError, match="is not a pruner"):
        load_pruner(tmp_path)
    with pytest.raises(ValueError, match="pruner is for --method learned"):
        prune(tiny_model, render(short_chains[0], tiny_model.tokenizer), method="random", pruner=str(tmp_path))


class Planted:
    def predict(self, x):
        return np.zeros(len(x))


def test_load_refuses_unknown_types(tiny_pruner, tmp_path):
    """A pruner file holding anything but a scikit-learn estimator is not loaded (no code runs)."""
    import shutil

    import skops.io as sio

    bad = tmp_path / "bad"
    shutil.copytree(tiny_pruner, bad)
    sio.dump(Planted(), bad / ESTIMATOR)  # a type no pruner holds: loading it could run its code
    with pytest.raises(RunError, match="holds types no pruner has"):
        load_pruner(bad)
    sio.dump({"weights": [1.0, 2.0]}, bad / ESTIMATOR)  # trusted types, but no estimator
    with pytest.raises(RunError, match="holds no estimator"):
        load_pruner(bad)


@pytest.mark.parametrize("keep_ratio", [0.0, 0.3])
def test_llmlingua_segments_keeps_what_segment_wise_self_information_keeps(tiny_model, short_chains, keep_ratio):
    """By hand with plain transformers: segment by segment, self-information given the prompt and the
    kept tokens of earlier segments; the lowest of each segment go. The first deletions of the order
    are exactly those tokens."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model.path, attn_implementation="eager").eval()
    layout = render(short_chains[9], tiny_model.tokenizer)
    reasoning, n, size = layout.reasoning_ids, len(layout.reasoning_ids), 5
    target = keep_ratio or 0.5
    context, dropped = list(layout.prompt_ids), []
    for start in range(0, n, size):
        segment = list(range(start, min(start + size, n)))
        ids = context + [reasoning[j] for j in segment]
        with torch.no_grad():
            logp = torch.log_softmax(plain(torch.tensor([ids])).logits[0].double(), -1)
        info = {j: -float(logp[len(context) + k - 1, reasoning[j]]) for k, j in enumerate(segment)}
        going = sorted(segment, key=lambda j: (info[j], j))[: len(segment) - round(target * len(segment))]
        dropped += going
        context += [reasoning[j] for j in segment if j not in going]
    order = prune(tiny_model, layout, method="llmlingua-segments", segment_tokens=size, keep_ratio=keep_ratio).order
    assert set(order[: len(dropped)]) == set(dropped)
    if keep_ratio == 0:
        assert sorted(order) == list(range(n))


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


def test_llmlingua_run_holds_the_package_rules_chain_at_its_keep_ratio(tiny_model, short_chains, tmp_path):
    """A text run: per chain the kept tokens of llmlingua 0.2.2's rules at the calibrated rate, decoded,
    scored exactly like any chain; a run without a keep ratio is refused before any work."""
    from prunelens.pruning.llmlingua import calibrated_keep
    from prunelens.schema import chains_at, read_table

    chains = short_chains[20:23]
    run = tmp_path / "lingua"
    prune_examples(tiny_model, chains, run, method="llmlingua", keep_ratio=0.6, segment_tokens=8, show_progress=False)
    table = chains_at(run, 0.6).set_index("example_id")
    texts = read_table(run, "texts").set_index("example_id")
    for e in chains:
        ids = tiny_model.tokenizer(e.reasoning, add_special_tokens=False)["input_ids"]
        kept = calibrated_keep(tiny_model.hf, ids, 0.6, 8)
        assert table.loc[e.id, "reasoning"] == tiny_model.tokenizer.decode([ids[j] for j in kept]).strip()
        assert abs(len(kept) - round(0.6 * len(ids))) <= 3 and 0 < texts.loc[e.id, "achieved_ratio"] < 1
    with pytest.raises(ValueError, match="give --keep-ratio"):
        prune_examples(tiny_model, chains, tmp_path / "none", method="llmlingua", show_progress=False)
