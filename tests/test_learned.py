"""The learned pruner (``prunelens.pruning.learned``) against independent computations on a tiny model."""

import json

import numpy as np
import pandas as pd
import pytest

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
