"""Pure helpers (``prunelens.ops``): ties, keep-ratio counts, the trajectory grid."""

import pytest

from prunelens.ops import n_to_delete, pick, trajectory_grid


def test_pick_breaks_ties_by_earliest_position():
    assert pick([0.1, 0.5, 0.5, 0.2]) == 1
    assert pick([0.1, 0.5, 0.5 + 1e-9, 0.2]) == 1  # within the tie tolerance
    assert pick([0.1, 0.5, 0.6, 0.2]) == 2


def test_keep_ratio_counts():
    assert n_to_delete(10, 0.0) == 10 and n_to_delete(10, 0.5) == 5 and n_to_delete(10, 1.0) == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        n_to_delete(10, 1.5)


def test_trajectory_grid_by_hand():
    assert trajectory_grid(40, 40) == list(range(0, 41, 2))  # every 0.05 of 40 tokens is 2 deletions
    assert trajectory_grid(40, 21) == list(range(0, 21, 2)) + [21]  # and the run's last state
    assert trajectory_grid(3, 3) == [0, 1, 2, 3]
