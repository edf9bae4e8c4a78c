"""eval.json statistics and eval.png: CIs over seeds (episodes for one seed), bars for single-trial envs."""

import numpy as np
import pytest

from ssmrl.experiment.evaluation import plot, trial_statistics


def test_intervals_are_over_seeds_when_there_are_several():
    # 3 seeds x 4 episodes x 2 trials; seed means of trial 1: 0, 1, 2
    returns = np.stack([np.full((4, 2), m) for m in (0.0, 1.0, 2.0)])
    stats = trial_statistics(returns, reps=300)
    assert stats["ci_over"] == "seeds"
    assert stats["trial_mean"] == pytest.approx([1.0, 1.0])
    assert 0.0 <= stats["trial_ci_low"][0] < 1.0 < stats["trial_ci_high"][0] <= 2.0
    assert np.asarray(stats["seed_trial_means"])[:, 0] == pytest.approx([0.0, 1.0, 2.0])


def test_one_seed_falls_back_to_episodes():
    returns = np.arange(8, dtype=float).reshape(1, 8, 1)
    stats = trial_statistics(returns, reps=300)
    assert stats["ci_over"] == "episodes" and stats["trial_mean"] == pytest.approx([3.5])
    assert stats["trial_ci_low"][0] < 3.5 < stats["trial_ci_high"][0]


@pytest.mark.parametrize("trials", [1, 3])
def test_eval_png_for_single_and_multi_trial_splits(tmp_path, trials):
    rng = np.random.default_rng(0)
    splits = {name: trial_statistics(rng.normal(size=(2, 5, trials)), reps=100) for name in ("train", "heldout")}
    plot({"model": "s5", "env": "X", "episodes": 10, "splits": splits}, str(tmp_path / "eval.png"))
    assert (tmp_path / "eval.png").stat().st_size > 0
