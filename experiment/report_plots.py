"""The figures of ``train/report.py``: aggregate intervals, performance profiles, learning curves over seeds."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rliable import plot_utils  # noqa: E402

from ssmrl.experiment.results import SeedResult  # noqa: E402
from ssmrl.experiment.statistics import Estimate, curve_band  # noqa: E402

CURVE_POINTS = 50


def aggregate_plot(estimates: dict[str, dict[str, Estimate]], names: tuple[str, ...], path: str) -> None:
    models = sorted(estimates)
    points = {m: np.array([estimates[m][n].value for n in names]) for m in models}
    intervals = {m: np.array([[estimates[m][n].low for n in names], [estimates[m][n].high for n in names]])
                 for m in models}
    fig, _ = plot_utils.plot_interval_estimates(points, intervals, [n.upper() if n == "iqm" else n.capitalize()
                                                                    for n in names], algorithms=models,
                                                xlabel="normalised score", row_height=0.6,
                                                xlabel_y_coordinate=-0.4)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def profile_plot(profiles: dict[str, np.ndarray], cis: dict[str, np.ndarray], taus: np.ndarray, path: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax,
                                         xlabel=r"normalised score $\tau$",
                                         ylabel=r"fraction of runs with score $> \tau$")
    ax.legend(ax.get_lines(), list(profiles), fontsize=8)  # the bands come first in ax's handles
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def seeds_on_grid(seeds: list[SeedResult]) -> tuple[np.ndarray, np.ndarray] | None:
    """The seeds' curves interpolated on a common grid of env steps: ``(steps [P], returns [seeds, P])``."""
    curves = []
    for s in seeds:
        steps, returns = np.asarray(s.curve_steps), np.asarray(s.curve_returns)
        ok = np.isfinite(returns)
        if ok.sum() >= 2:
            curves.append((steps[ok], returns[ok]))
    if not curves:
        return None
    low, high = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
    if high <= low:
        return None
    grid = np.linspace(low, high, CURVE_POINTS)
    return grid, np.stack([np.interp(grid, steps, returns) for steps, returns in curves])


def curves_plot(table: dict[str, dict[str, list[SeedResult]]], path: str, reps: int) -> bool:
    """One panel per env with a curve: each model's mean over seeds and a bootstrap band. False if none."""
    panels = {env: {m: g for m, seeds in per_env.items() if (g := seeds_on_grid(seeds)) is not None}
              for env, per_env in table.items()}
    panels = {env: per for env, per in panels.items() if per}
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.5 * rows), squeeze=False)
    for ax, (env, per_model) in zip(axes.flat, sorted(panels.items())):
        for model, (grid, runs) in sorted(per_model.items()):
            mean, low, high = curve_band(runs, reps)
            (line,) = ax.plot(grid, mean, label=f"{model} (n={len(runs)})")
            ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
