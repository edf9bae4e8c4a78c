"""Scores across seeds with rliable (Agarwal et al. 2021): point estimates and stratified-bootstrap CIs.

A confidence interval here is over seeds (independent training runs), never over the episodes of one
run: episodes of one policy say how well that policy does, seeds say how well the method does.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from rliable import library as rly
from rliable import metrics

METRICS = {"mean": metrics.aggregate_mean, "median": metrics.aggregate_median, "iqm": metrics.aggregate_iqm}


@dataclasses.dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _bootstrap(score_dict: dict[str, np.ndarray], func, reps: int, confidence: float, seed: int):
    with warnings.catch_warnings():  # arch deprecates the RandomState rliable hands it; it keeps reports reproducible
        warnings.simplefilter("ignore", FutureWarning)
        return rly.get_interval_estimates(score_dict, func, reps=reps, confidence_interval_size=confidence,
                                          random_state=np.random.RandomState(seed))


def interval_estimates(score_dict: dict[str, np.ndarray], names: tuple[str, ...], reps: int, confidence: float = 0.95,
                       seed: int = 0) -> dict[str, dict[str, Estimate]]:
    """``{model: scores [runs, tasks]}`` -> ``{model: {metric: Estimate}}``, bootstrapping runs within each task."""

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([METRICS[n](x) for n in names])

    points, intervals = _bootstrap(score_dict, func, reps, confidence, seed)
    return {m: {n: Estimate(float(points[m][i]), float(intervals[m][0, i]), float(intervals[m][1, i]))
                for i, n in enumerate(names)} for m in score_dict}


def per_seed_estimates(seed_scores: np.ndarray, reps: int, seed: int = 0) -> dict[str, Estimate]:
    """Mean and IQM over the seeds of one env x model, with CIs from resampling those seeds."""
    return interval_estimates({"_": np.asarray(seed_scores, np.float64)[:, None]}, ("mean", "iqm"), reps,
                              seed=seed)["_"]


def curve_band(runs: np.ndarray, reps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``runs [seeds, points]`` -> the mean curve and its bootstrap CI band over seeds (each ``[points]``)."""

    def func(x: np.ndarray) -> np.ndarray:  # x [seeds, 1, points]
        return x.mean(axis=(0, 1))

    points, intervals = _bootstrap({"_": np.asarray(runs, np.float64)[:, None, :]}, func, reps, 0.95, seed)
    return points["_"], intervals["_"][0], intervals["_"][1]

