"""Evaluate a finished (or interrupted) run from its directory, on every evaluation split.

Offline runs (``kind`` in ``run.json``: ``dt``, ``meta_dt``, ``prompt_dt``) go to
``experiment.offline_evaluation`` (per-task returns on the train and held-out tasks). For a PPO run, for each split (``envs.evaluation_splits``: the env itself, or for meta-RL the training pool, new
projections of it and the held-out pool) it reports the mean return of trial 1, 2, ..., N with a 95%
confidence interval over all seeds x episodes, writes ``eval.json`` and plots ``eval.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
from agents.ppo.config import PPOConfig, from_mapping  # noqa: E402
from agents.ppo.evaluate import make_evaluate  # noqa: E402
from agents.ppo.train import build  # noqa: E402
from experiment.checkpoint import Checkpoints  # noqa: E402
from experiment.offline_evaluation import OFFLINE_KINDS, evaluate_offline_run  # noqa: E402
from experiment.ppo import RUN_FILE  # noqa: E402


def read_run_file(run_dir: str) -> dict:
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: run= must be a directory written by train/ppo.py, "
                                "train/dt.py or train/meta_dt.py")
    with open(path) as f:
        return json.load(f)


def load_run(run_dir: str) -> tuple[PPOConfig, int]:
    run = read_run_file(run_dir)
    config = run["config"]
    for key in ("env_options", "model_options"):
        config[key] = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in config[key])
    return from_mapping(config), int(run["seeds"])


def restore_params(run_dir: str, config: PPOConfig, seeds: int) -> tuple[int, dict]:
    """``(checkpoint step, network params with a leading [seeds] axis)`` of a PPO run's newest checkpoint."""
    parts = build(config)
    template = jax.jit(jax.vmap(parts.init))(jax.random.split(jax.random.PRNGKey(0), seeds))
    checkpoints = Checkpoints(os.path.join(run_dir, "checkpoints"))
    try:
        step, state, _ = checkpoints.restore(template)
    finally:
        checkpoints.close()
    return step, state.train_state.params


def confidence_interval(x: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of a normal 95% interval over axis 0."""
    return float(x.mean()), float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def evaluate_run(run_dir: str, episodes: int = 256, deterministic: bool = False, seed: int = 0) -> dict:
    """``episodes``: per split (PPO, spread over seeds) or per split spread over its tasks (offline runs,
    rounded up to whole episodes per task); ``deterministic`` concerns PPO only (DT policies are)."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    run = read_run_file(run_dir)
    if run.get("kind") in OFFLINE_KINDS:
        return evaluate_offline_run(run_dir, run, episodes, seed)
    config, seeds = load_run(run_dir)
    step, params = restore_params(run_dir, config, seeds)
    per_seed = -(-episodes // seeds)
    report = {"run": os.path.abspath(run_dir), "checkpoint": step, "env": config.env_name,
              "model": config.model, "episodes": per_seed * seeds, "splits": {}}
    for split, options in envs.evaluation_splits(config.env_name, **dict(config.env_options)).items():
        split_config = dataclasses.replace(config, env_options=tuple(sorted(options.items())))
        evaluate = jax.jit(jax.vmap(make_evaluate(build(split_config), per_seed, deterministic)))
        returns = np.asarray(evaluate(params, jax.random.split(jax.random.PRNGKey(seed), seeds)))
        returns = returns.reshape(-1, returns.shape[-1])  # [seeds * episodes, trials]
        stats = [confidence_interval(returns[:, t]) for t in range(returns.shape[1])]
        report["splits"][split] = {
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
            "trial_mean": [m for m, _ in stats],
            "trial_ci95": [c for _, c in stats],
            "total_mean": float(returns.sum(-1).mean()),
        }
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot(report, os.path.join(run_dir, "eval.png"))
    return report


def plot(report: dict, path: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for split, stats in report["splits"].items():
        trials = np.arange(1, len(stats["trial_mean"]) + 1)
        mean, ci = np.asarray(stats["trial_mean"]), np.asarray(stats["trial_ci95"])
        ax.errorbar(trials, mean, yerr=ci, marker="o", capsize=3, label=split)
    ax.set_xlabel("trial")
    ax.set_ylabel("mean return (95% CI)")
    ax.set_title(f"PPO-{report['model']} on {report['env']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
