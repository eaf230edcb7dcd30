"""``PruneConfig`` (``prunelens.pruning.config``): settings checked before any work."""

import pytest

from prunelens.pruning import PruneConfig, prune_examples


def test_config_is_validated_before_any_work():
    for bad, message in [({"method": "magic"}, "unknown method"), ({"objective": "everything"}, "unknown objective"),
                         ({"keep_ratio": 1.0}, "keep ratio"), ({"fast_share": 0}, "fast_share"),
                         ({"batch_share": 1.0}, "batch_share"), ({"max_batch": 0}, "max_batch"),
                         ({"dtype": "int8"}, "unknown dtype"), ({"trajectory": "some"}, "unknown trajectory")]:
        with pytest.raises(ValueError, match=message):
            PruneConfig(**bad)
    with pytest.raises(ValueError, match="unknown pruning settings"):
        PruneConfig.from_dict({"method": "greedy", "beam": 3})
    config = PruneConfig(method="greedy-fast", fast_share=0.2)
    assert PruneConfig.from_dict(config.to_dict()) == config


def test_lockstep_is_refused_where_it_cannot_apply(tiny_model, short_chains, tmp_path):
    from prunelens.cluster import RayOptions

    with pytest.raises(ValueError, match="lockstep is for the searches .greedy, greedy-words, greedy-fast, greedy-batch., not random"):
        PruneConfig(method="random", lockstep=2)
    with pytest.raises(ValueError, match="not with --ray"):
        prune_examples(tiny_model, short_chains[:2], tmp_path / "run", lockstep=2, ray=RayOptions("local"),
                       show_progress=False)
