"""A complete PPO run in a directory: train seeds vmapped, log, checkpoint, resume, evaluate, plot."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tensorboardX import SummaryWriter

from agents.params import count_params
from agents.ppo.config import PPOConfig, validate
from agents.ppo.evaluate import make_evaluate
from agents.ppo.train import RunnerState, build, make_chunk
from experiment.checkpoint import Checkpoints
from experiment.loop import run_chunks, stack_history
from experiment.plots import learning_curve

RUN_FILE = "run.json"  # what a run was started with: enough to rebuild it for evaluation


def runner_shardings(state: RunnerState, mesh: Mesh) -> RunnerState:
    """Environments (axis 1, after the seed axis) split across devices; parameters replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())
    by_env = NamedSharding(mesh, PartitionSpec(None, "envs"))

    def every(tree, sharding):
        return jax.tree_util.tree_map(lambda _: sharding, tree)

    return state.replace(
        train_state=every(state.train_state, replicated),
        key=replicated,
        env_state=every(state.env_state, by_env),
        obs=by_env,
        done=by_env,
        prev_action=by_env,
        carry=every(state.carry, by_env),
    )


def run_ppo(config: PPOConfig, run_dir: str, seeds: int = 1, seed: int = 0, resume: bool = False,
            stop_after: int | None = None, progress: bool = True, deterministic_eval: bool = False) -> dict:
    """Train ``seeds`` seeds of ``config`` in one vmapped run under ``run_dir``; returns the summary.

    ``stop_after`` ends the run after that many chunks (as a crash would); ``resume`` continues from
    the newest checkpoint in ``run_dir``.
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    validate(config)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, RUN_FILE), "w") as f:
        json.dump({"config": dataclasses.asdict(config), "seeds": seeds, "seed": seed}, f, indent=2)
    parts = build(config)
    init = jax.jit(jax.vmap(parts.init))
    chunk = jax.vmap(make_chunk(parts))
    state = init(jax.random.split(jax.random.PRNGKey(seed), seeds))
    if jax.device_count() > 1:
        mesh = Mesh(np.asarray(jax.devices()), ("envs",))
        shardings = runner_shardings(state, mesh)
        state = jax.device_put(state, shardings)
        chunk = jax.jit(chunk, in_shardings=(shardings,),
                        out_shardings=(shardings, NamedSharding(mesh, PartitionSpec())))
    else:
        chunk = jax.jit(chunk)

    writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
    checkpoints = Checkpoints(os.path.join(run_dir, "checkpoints"))
    steps_per_update = config.steps_per_update
    try:
        result = run_chunks(chunk, state, config.num_chunks, steps_per_update, checkpoints, writer, resume=resume,
                            stop_after=stop_after, show_progress=progress)
    finally:
        checkpoints.close()
    writer.close()

    returns = stack_history(result.history, "episode_return")
    updates_done = returns.shape[-1]
    env_steps = updates_done * steps_per_update
    evaluate = jax.jit(jax.vmap(make_evaluate(parts, config.eval_envs, deterministic_eval)))
    # [seeds, envs, trials] -> whole-episode returns [seeds, envs]
    eval_returns = np.asarray(evaluate(result.state.train_state.params,
                                       jax.random.split(jax.random.PRNGKey(seed + 1), seeds))).sum(-1)
    curve_steps = np.arange(1, updates_done + 1) * steps_per_update
    summary = {
        "env": config.env_name,
        "model": config.model,
        "seeds": seeds,
        "params": count_params(jax.tree_util.tree_map(lambda p: p[0], result.state.train_state.params)),
        "env_steps": env_steps,
        "updates": updates_done,
        "finished": updates_done >= config.num_updates,
        "wall_time_s": result.wall_time,
        # Throughput over all seeds, measured on chunks after the first (which includes compilation).
        "steps_per_s": (result.train_env_steps * seeds / result.train_seconds) if result.train_seconds else None,
        "final_return": eval_returns.mean(axis=1).tolist(),
        "final_return_mean": float(eval_returns.mean()),
        "last_train_return": [float(np.nanmean(r[-max(1, len(r) // 10):])) if np.isfinite(r).any() else None
                              for r in returns],
        # Training return after every update, per seed (null: no episode ended): train/report.py's curves.
        "curve": {"env_steps": curve_steps.tolist(),
                  "episode_return": [[float(v) if np.isfinite(v) else None for v in r] for r in returns]},
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    learning_curve(curve_steps, returns, os.path.join(run_dir, "learning_curve.png"),
                   f"PPO-{config.model} on {config.env_name}")
    return summary

