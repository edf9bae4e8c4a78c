"""Learning-curve plots written into a run directory."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ssmrl.experiment.statistics import curve_band  # noqa: E402


def learning_curve(env_steps: np.ndarray, returns: np.ndarray, path: str, title: str, reps: int = 500) -> None:
    """``env_steps [U]``, ``returns [S, U]`` (NaN where no episode finished) -> PNG at ``path``: each seed
    faintly, the mean over seeds, and with several seeds a 95% bootstrap band over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for seed, curve in enumerate(returns):
        ok = np.isfinite(curve)
        ax.plot(env_steps[ok], curve[ok], alpha=0.35, lw=1, label=f"seed {seed}" if len(returns) <= 8 else None)
    every_seed = np.isfinite(returns).all(axis=0)
    if len(returns) > 1 and every_seed.sum() > 1:
        mean, low, high = curve_band(returns[:, every_seed], reps)
        ax.plot(env_steps[every_seed], mean, color="black", lw=2, label=f"mean of {len(returns)} seeds")
        ax.fill_between(env_steps[every_seed], low, high, color="black", alpha=0.15, label="95% CI over seeds")
    else:
        with warnings.catch_warnings():  # all-NaN columns (no finished episode yet) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(returns, axis=0)
        ok = np.isfinite(mean)
        ax.plot(env_steps[ok], mean[ok], color="black", lw=2, label="mean")
    _save(fig, ax, "environment steps", "episode return", title, path)


def error_over_horizon(errors: dict[str, np.ndarray], context: int, path: str, title: str, reps: int = 500) -> None:
    """``errors``: name -> ``[seeds, T]`` squared error per frame -> PNG at ``path``: each name's mean over seeds
    per step (with a 95% bootstrap band over seeds when there are several), and where imagination starts."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in sorted(errors.items()):
        steps = np.arange(runs.shape[1])
        mean, low, high = curve_band(runs, reps) if len(runs) > 1 else (runs[0], None, None)
        line, = ax.plot(steps, mean, lw=1.5, label=f"{name} ({len(runs)} seeds)")
        if low is not None:
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
    ax.axvline(context - 0.5, color="grey", ls="--", lw=1, label="imagination starts")
    _save(fig, ax, "step of the episode", "squared error per frame", title, path)


def _save(fig, ax, xlabel: str, ylabel: str, title: str, path: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
