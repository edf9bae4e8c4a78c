"""A complete PPO run in a directory: train seeds vmapped, log, checkpoint, resume, evaluate, plot."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ssmrl.agents.params import count_params
from ssmrl.agents.ppo.config import PPOConfig, validate
from ssmrl.agents.ppo.evaluate import make_evaluate
from ssmrl.agents.ppo.train import PPOParts, RunnerState, build
from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.logger import check as check_logger
from ssmrl.experiment.logger import flat_hparams, make_writer
from ssmrl.experiment.loop import run_chunks, stack_history
from ssmrl.experiment.plots import learning_curve
from ssmrl.experiment.progress import Progress

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


def seeds_chunk(parts: PPOParts, on_update: Callable[[jax.Array], None] | None = None
                ) -> Callable[[RunnerState], tuple[RunnerState, dict]]:
    """``config.chunk_updates`` updates of every seed at once: a state with a leading ``[seeds]`` axis ->
    metrics ``[seeds, updates]``. The scan runs over the seed-vmapped update (not a vmap of the scan) so
    that ``on_update(episode_return [seeds])`` can run on the host once per update, for the progress bar.
    """
    update = jax.vmap(parts.update, in_axes=(0, None))

    def body(runner: RunnerState, _):
        runner, metrics = update(runner, None)
        if on_update is not None:
            jax.debug.callback(on_update, metrics["episode_return"])
        return runner, metrics

    def chunk(runner: RunnerState):
        runner, metrics = jax.lax.scan(body, runner, None, parts.config.chunk_updates)
        return runner, jax.tree_util.tree_map(lambda m: jnp.swapaxes(m, 0, 1), metrics)

    return chunk


def run_ppo(config: PPOConfig, run_dir: str, seeds: int = 1, seed: int = 0, resume: bool = False,
            stop_after: int | None = None, progress: bool = True, deterministic_eval: bool = False,
            logger: str = "tensorboard") -> dict:
    """Train ``seeds`` seeds of ``config`` in one vmapped run under ``run_dir``; returns the summary.

    ``stop_after`` ends the run after that many chunks (as a crash would); ``resume`` continues from
    the newest checkpoint in ``run_dir``; ``logger``: ``tensorboard`` or ``wandb`` (``experiment.logger``).
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    validate(config)
    check_logger(logger)
    os.makedirs(run_dir, exist_ok=True)
    run_record = {"config": dataclasses.asdict(config), "seeds": seeds, "seed": seed}
    with open(os.path.join(run_dir, RUN_FILE), "w") as f:
        json.dump(run_record, f, indent=2)
    parts = build(config)
    init = jax.jit(jax.vmap(parts.init))
    bar = Progress(config.num_updates * config.steps_per_update * seeds, config.steps_per_update * seeds,
                   enabled=progress)
    # no host callback when nobody watches: executables with one stay out of the persistent compile cache
    chunk = seeds_chunk(parts, bar.on_update if progress else None)
    state = init(jax.random.split(jax.random.PRNGKey(seed), seeds))
    if jax.device_count() > 1:
        mesh = Mesh(np.asarray(jax.devices()), ("envs",))
        shardings = runner_shardings(state, mesh)
        state = jax.device_put(state, shardings)
        chunk = jax.jit(chunk, in_shardings=(shardings,),
                        out_shardings=(shardings, NamedSharding(mesh, PartitionSpec())))
    else:
        chunk = jax.jit(chunk)

    writer = make_writer(logger, run_dir, run_record)
    checkpoints = Checkpoints(os.path.join(run_dir, "checkpoints"))
    steps_per_update = config.steps_per_update
    try:
        result = run_chunks(chunk, state, config.num_chunks, steps_per_update, checkpoints, writer, resume=resume,
                            stop_after=stop_after, progress=bar)
    finally:
        checkpoints.close()
        bar.close()

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
    writer.add_scalar("eval/return", summary["final_return_mean"], env_steps)
    for s, value in enumerate(summary["final_return"]):
        writer.add_scalar(f"seed_{s}/eval_return", value, env_steps)
    writer.add_hparams(flat_hparams({"config": summary["config"], "seeds": seeds}),
                       {"hparam/eval_return": summary["final_return_mean"]})
    writer.close()
    learning_curve(curve_steps, returns, os.path.join(run_dir, "learning_curve.png"),
                   f"PPO-{config.model} on {config.env_name}")
    return summary

