"""A complete PPO run in a directory: train seeds together, log, checkpoint, resume, evaluate, plot."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ssmrl.agents.config import to_fields
from ssmrl.agents.params import count_params
from ssmrl.agents.ppo.config import PPOConfig, validate
from ssmrl.agents.ppo.evaluate import make_evaluate
from ssmrl.agents.ppo.train import PPOParts, RunnerState, build
from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.logger import check as check_logger
from ssmrl.experiment.logger import flat_hparams, make_writer
from ssmrl.experiment.loop import LoopResult, LoopSpec, run_loop, stack_history
from ssmrl.experiment.plots import learning_curve
from ssmrl.experiment.progress import Progress
from ssmrl.experiment.run_dir import RunDir
from ssmrl.experiment.seeds import SeedMethod, over_seeds


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
        first=by_env,
        prev_action=by_env,
        carry=every(state.carry, by_env),
    )


def seeds_chunk(parts: PPOParts, on_update: Callable[[jax.Array], None] | None = None,
                method: SeedMethod = "auto") -> Callable[[RunnerState], tuple[RunnerState, dict]]:
    """``config.chunk_updates`` updates of every seed: a state with a leading ``[seeds]`` axis -> metrics
    ``[seeds, updates]``, the seeds run as ``method`` says (``experiment.seeds``; ``auto``: one after another on the
    CPU, vmapped elsewhere).
    The scan runs over the update of all seeds (not over seeds of the scan) so that
    ``on_update(episode_return [seeds])`` can run on the host once per update, for the progress bar.
    """
    update = over_seeds(lambda runner: parts.update(runner, None), method)

    def body(runner: RunnerState, _):
        runner, metrics = update(runner)
        if on_update is not None:
            jax.debug.callback(on_update, metrics["episode_return"])
        return runner, metrics

    def chunk(runner: RunnerState):
        runner, metrics = jax.lax.scan(body, runner, None, parts.config.chunk_updates)
        return runner, jax.tree_util.tree_map(lambda m: jnp.swapaxes(m, 0, 1), metrics)

    return chunk


def run_record(config: PPOConfig, seeds: int, seed: int, deterministic_eval: bool, progress: bool,
               logger: str) -> dict:
    """The ``config`` of a PPO run's ``run.json``: everything it was started with."""
    return {"ppo": to_fields(config), "seeds": seeds, "seed": seed, "deterministic_eval": deterministic_eval,
            "progress": progress, "logger": logger}


def run_ppo(config: PPOConfig, run_dir: str, seeds: int = 1, seed: int = 0, resume: bool = False,
            stop_after: int | None = None, progress: bool = True, deterministic_eval: bool = False,
            logger: str = "tensorboard") -> dict:
    """Train ``seeds`` seeds of ``config`` in one run under ``run_dir``; returns the summary.

    ``stop_after`` ends the run after that many chunks (as a crash would); ``resume`` continues from
    the newest checkpoint in ``run_dir``; ``logger``: ``tensorboard`` or ``wandb`` (``experiment.logger``).
    Raises ``RunDirError`` for a used ``run_dir`` without ``resume`` and ``loop.Diverged`` / ``loop.Interrupted``.
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    validate(config)
    check_logger(logger)
    record = run_record(config, seeds, seed, deterministic_eval, progress, logger)
    defaults = {"ppo": to_fields(PPOConfig())}
    with RunDir(run_dir, "ppo", record, resume, defaults=defaults) as run:
        return _train(config, run, seeds, seed, stop_after, progress, deterministic_eval, logger)


def _train(config: PPOConfig, run: RunDir, seeds: int, seed: int, stop_after: int | None, progress: bool,
           deterministic_eval: bool, logger: str) -> dict:
    parts = build(config)
    init = jax.jit(over_seeds(parts.init))
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

    steps_per_update = config.steps_per_update
    spec = LoopSpec(config.num_chunks, steps_per_update, headline="episode_return", losses=("loss",),
                    sparse=("episode_return",))
    writer = make_writer(logger, run.path, run.config)
    checkpoints = Checkpoints(os.path.join(run.path, "checkpoints"))
    try:
        result = run_loop(chunk, state, spec, checkpoints, writer=writer, resume=run.resuming, stop_after=stop_after,
                          progress=bar, params=lambda s: s.train_state.params, run=run)
        bar.close()
        summary = _summarise(config, parts, result, seeds, seed, deterministic_eval, writer)
    finally:
        checkpoints.close()
        bar.close()
        writer.close()
    run.write_summary(summary)
    learning_curve(np.asarray(summary["curve"]["env_steps"]), stack_history(result.history, "episode_return"),
                   os.path.join(run.path, "learning_curve.png"), f"PPO-{config.model} on {config.env_name}")
    return summary


def _summarise(config: PPOConfig, parts: PPOParts, result: LoopResult, seeds: int, seed: int,
               deterministic_eval: bool, writer) -> dict:
    """Evaluate the final policy of every seed and gather the figures of ``summary.json``."""
    steps_per_update = config.steps_per_update
    returns = stack_history(result.history, "episode_return").reshape(seeds, -1)  # [seeds, updates]
    updates_done = result.updates
    env_steps = updates_done * steps_per_update
    evaluate = jax.jit(over_seeds(make_evaluate(parts, config.eval_envs, deterministic_eval)))
    # [seeds, envs, trials] -> whole-episode returns [seeds, envs]
    eval_returns = np.asarray(evaluate(result.state.train_state.params,
                                       jax.random.split(jax.random.PRNGKey(seed + 1), seeds))).sum(-1)
    curve_steps = np.arange(1, updates_done + 1) * steps_per_update
    summary = {
        "kind": "ppo",
        "env": config.env_name,
        "model": config.model,
        "seeds": seeds,
        "params": count_params(jax.tree_util.tree_map(lambda p: p[0], result.state.train_state.params)),
        "env_steps": env_steps,
        "updates": updates_done,
        "finished": updates_done >= config.num_updates,
        "stopped": result.stopped,
        "wall_time_s": result.wall_time_s,
        # Throughput over all seeds, measured on chunks after the first (which includes compilation).
        "steps_per_s": (result.train_updates * steps_per_update * seeds / result.train_seconds)
        if result.train_seconds else None,
        "final_return": eval_returns.mean(axis=1).tolist(),
        "final_return_mean": float(eval_returns.mean()),
        "last_train_return": [float(np.nanmean(r[-max(1, len(r) // 10):])) if np.isfinite(r).any() else None
                              for r in returns],
        # Training return after every update, per seed (null: no episode ended): train/report.py's curves.
        "curve": {"env_steps": curve_steps.tolist(),
                  "episode_return": [[float(v) if np.isfinite(v) else None for v in r] for r in returns]},
        "config": dataclasses.asdict(config),
    }
    writer.add_scalar("eval/return", summary["final_return_mean"], env_steps)
    for s, value in enumerate(summary["final_return"]):
        writer.add_scalar(f"seed_{s}/eval_return", value, env_steps)
    writer.add_hparams(flat_hparams({"config": summary["config"], "seeds": seeds}),
                       {"hparam/eval_return": summary["final_return_mean"]})
    return summary
