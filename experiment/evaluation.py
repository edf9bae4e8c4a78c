"""Evaluate a finished (or interrupted) run from its directory, on every evaluation split.

``evaluate_run`` dispatches on ``kind`` in ``run.json``: offline runs (``dt``, ``meta_dt``) go to
``experiment.offline_evaluation`` (per-task returns on the train and held-out tasks), world-model runs
to ``experiment.world_model`` (returns of the episodes finished in the run's evaluation budget),
``collect`` runs have no policy to evaluate and are refused by name. For a PPO run,
for each split (``envs.evaluation_splits``: the env itself, or for meta-RL the training pool, new
projections of it and the held-out pool) it reports the mean return of trial 1, 2, ..., N with a 95%
bootstrap confidence interval (rliable) over the run's seeds (over the episodes of a one-seed run,
which says how sure we are of that policy, not of the method), writes ``eval.json`` and plots ``eval.png``.
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

from ssmrl import envs  # noqa: E402
from ssmrl.agents.ppo.config import PPOConfig, from_mapping  # noqa: E402
from ssmrl.agents.ppo.evaluate import make_evaluate  # noqa: E402
from ssmrl.agents.ppo.train import build  # noqa: E402
from ssmrl.experiment.checkpoint import restore_latest  # noqa: E402
from ssmrl.experiment.offline_evaluation import OFFLINE_KINDS, evaluate_offline_run  # noqa: E402
from ssmrl.experiment.run_dir import RunDirError, read_run  # noqa: E402
from ssmrl.experiment.seeds import over_seeds  # noqa: E402
from ssmrl.experiment.statistics import curve_band  # noqa: E402
from ssmrl.experiment.video import is_image, write_video  # noqa: E402

EVALUATED = ("ppo", "world_model", "dt", "meta_dt")


def load_run(run: dict) -> tuple[PPOConfig, int]:
    """A PPO run's ``run.json`` -> ``(config, seeds)``."""
    return from_mapping(run["config"]["ppo"]), int(run["config"]["seeds"])


def restore_params(run_dir: str, config: PPOConfig, seeds: int) -> tuple[int, dict]:
    """``(checkpoint step, network params with a leading [seeds] axis)`` of a PPO run's newest checkpoint."""
    parts = build(config)
    template = jax.jit(over_seeds(parts.init))(jax.random.split(jax.random.PRNGKey(0), seeds))
    step, state = restore_latest(os.path.join(run_dir, "checkpoints"), template)
    return step, state.train_state.params


def trial_statistics(returns: np.ndarray, reps: int = 2000) -> dict:
    """``returns [seeds, episodes, trials]`` -> per trial: the mean and a 95% bootstrap CI over seeds
    (over episodes when there is one seed), and each seed's own mean."""
    seed_means = returns.mean(axis=1)  # [seeds, trials]
    over = "seeds" if len(seed_means) > 1 else "episodes"
    mean, low, high = curve_band(seed_means if over == "seeds" else returns[0], reps)
    return {
        "trial_mean": mean.tolist(),
        "trial_ci_low": low.tolist(),
        "trial_ci_high": high.tolist(),
        "trial_ci95": np.maximum(mean - low, high - mean).tolist(),  # the wider side, as one +- number
        "ci_over": over,
        "seed_trial_means": seed_means.tolist(),
    }


def record_episode(run_dir: str, config: PPOConfig, params: dict, deterministic: bool, seed: int) -> list[str]:
    """One episode of the first seed's policy as ``episode.gif`` (and ``.mp4`` with ffmpeg); returns the paths."""
    parts = build(config)
    record = jax.jit(make_evaluate(parts, 1, deterministic, record=True))
    first_seed = jax.tree_util.tree_map(lambda p: p[0], params)
    _, observations, over = jax.device_get(record(first_seed, jax.random.PRNGKey(seed)))
    frames = np.asarray(observations)[~np.asarray(over)[:, 0], 0]  # [T, H, W, C] until the episode ends
    return write_video(frames, os.path.join(run_dir, "episode"))


def evaluate_run(run_dir: str, episodes: int = 256, deterministic: bool = False, seed: int = 0,
                 video: bool = False) -> dict:
    """Evaluate any run that has a policy (``kind`` in ``run.json``: ppo, world_model, dt, meta_dt).

    ``episodes``: per split (PPO, spread over seeds) or per split spread over its tasks (offline runs,
    rounded up to whole episodes per task); ``deterministic``: PPO and world-model runs act with their
    policy's likeliest action (DT policies are deterministic already);
    ``video``: also record an episode of an image-observation env (PPO runs)."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    run = read_run(run_dir)
    if run["kind"] not in EVALUATED:
        raise RunDirError(f"{run_dir} is a {run['kind']!r} run, which has no policy to evaluate; train/evaluate.py "
                         f"evaluates {list(EVALUATED)} runs (evaluate datasets by training train/dt.py on them)")
    if video and run["kind"] != "ppo":
        raise ValueError(f"video=true needs a PPO run on an image-observation env; {run_dir} is a "
                         f"{run['kind']} run")
    if run["kind"] in OFFLINE_KINDS:
        return evaluate_offline_run(run_dir, run, episodes, seed)
    if run["kind"] == "world_model":
        from ssmrl.experiment.world_model import evaluate_world_model_run

        return evaluate_world_model_run(run_dir, run, episodes, seed, deterministic)
    config, seeds = load_run(run)
    if video:
        env, env_params = envs.make(config.env_name, **dict(config.env_options))
        shape = tuple(env.observation_space(env_params).shape)
        if not is_image(shape):
            raise ValueError(f"video=true needs image observations [H, W, C] (MinAtar, Atari); {config.env_name} "
                             f"observes {shape}")
    step, params = restore_params(run_dir, config, seeds)
    per_seed = -(-episodes // seeds)
    report = {"run": os.path.abspath(run_dir), "checkpoint": step, "env": config.env_name,
              "model": config.model, "episodes": per_seed * seeds, "splits": {}}
    for split, options in envs.evaluation_splits(config.env_name, **dict(config.env_options)).items():
        split_config = dataclasses.replace(config, env_options=tuple(sorted(options.items())))
        evaluate = jax.jit(over_seeds(make_evaluate(build(split_config), per_seed, deterministic)))
        returns = np.asarray(evaluate(params, jax.random.split(jax.random.PRNGKey(seed), seeds)))  # [S, E, trials]
        report["splits"][split] = {
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
            **trial_statistics(returns),
            "total_mean": float(returns.sum(-1).mean()),
        }
    if video:
        report["video"] = record_episode(run_dir, config, params, deterministic, seed)
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot(report, os.path.join(run_dir, "eval.png"))
    return report


def plot(report: dict, path: str) -> None:
    """Single-trial splits: one bar per split with its CI and each seed's mean as a dot. Multi-trial
    (meta-RL) splits: the mean return of trial 1..N per split with a shaded CI band."""
    splits = report["splits"]
    fig, ax = plt.subplots(figsize=(6, 4))
    over = {s["ci_over"] for s in splits.values()}.pop()
    if all(len(s["trial_mean"]) == 1 for s in splits.values()):
        for i, (split, s) in enumerate(splits.items()):
            mean, low, high = s["trial_mean"][0], s["trial_ci_low"][0], s["trial_ci_high"][0]
            ax.bar(i, mean, color=f"C{i}", alpha=0.5, width=0.6)
            ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]], color="black", capsize=6)
            seeds = np.asarray(s["seed_trial_means"])[:, 0]
            ax.scatter(np.full(seeds.shape, i) + np.linspace(-0.15, 0.15, len(seeds)), seeds, color="black", s=12,
                       zorder=3, label="seed means" if i == 0 else None)
        ax.set_xticks(range(len(splits)), list(splits))
        ax.set_xlim(-0.75, len(splits) - 0.25)
        # bars start at 0: keep 0 in view so the axis cannot zoom a small difference into a large one
        values = [0.0] + [v for s in splits.values() for v in (*s["trial_ci_low"], *s["trial_ci_high"],
                                                               *np.ravel(s["seed_trial_means"]))]
        pad = 0.1 * (max(values) - min(values) or 1.0)
        ax.set_ylim(min(values) - pad, max(values) + pad)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.legend(fontsize=8)
    else:
        for split, s in splits.items():
            trials = np.arange(1, len(s["trial_mean"]) + 1)
            (line,) = ax.plot(trials, s["trial_mean"], marker="o", label=split)
            ax.fill_between(trials, s["trial_ci_low"], s["trial_ci_high"], color=line.get_color(), alpha=0.2)
        ax.set_xlabel("trial")
        ax.legend()
    ax.set_ylabel(f"mean return (95% bootstrap CI over {over})")
    ax.set_title(f"PPO-{report['model']} on {report['env']}: {report['episodes']} episodes per split")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
