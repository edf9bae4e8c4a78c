"""A complete world-model run in a directory: prefill, train through the one loop (chunks of donated,
jitted updates looped on the host), evaluate, and write ``summary.json``, a learning curve and the
imagined-vs-real GIF.

Any registered env with discrete actions; Atari runs also report human-normalised scores.
Resume restores the whole state of a pure-JAX env's run bit for bit. Atari's emulators live in C++
and cannot be saved, so a resumed Atari run resets its envs and the policy's carry (new episodes
where the interrupted run was mid-episode); parameters, optimisers, replay, DFS counts, RNG key and
step counters are restored. ``total_steps`` may grow on resume: the replay (sized to the run) grows
with it and a pure-JAX env's run goes on to the same state as one started with the larger value
(sampling reads only the rows written, and an evaluation does not touch the run's RNG).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.config import to_fields
from ssmrl.agents.params import count_params
from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import (
    AgentState,
    Parts,
    build,
    fresh_env,
    init,
    make_chunk,
    make_env,
    make_evaluate,
    make_prefill,
    open_loop,
)
from ssmrl.agents.world_model.config import WorldModelConfig, from_mapping, validate
from ssmrl.envs.atari.scores import GAMES, human_normalized_score
from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.logger import make_writer
from ssmrl.experiment.loop import LoopSpec, run_loop, stack_history
from ssmrl.experiment.plots import learning_curve
from ssmrl.experiment.progress import Progress
from ssmrl.experiment.run_dir import RunDir, RunDirError, read_run, write_json

VIDEO_FILE = "imagination.gif"
REPLAY_ROWS = "['replay']['action']"  # the checkpointed leaf whose first axis is the replay's capacity


def _like_checkpoint(state, checkpoints: Checkpoints):
    """``state`` with as many replay rows as the newest checkpoint's: an extended run (``total_steps`` grown on
    resume) holds the replay of its old length until its first new chunk is saved."""
    return state.replace(replay=rb.resize(state.replay, checkpoints.shape(REPLAY_ROWS)[0]))


def _nanmean(x) -> float | None:
    x = np.asarray(x, np.float64)
    return float(np.mean(x[np.isfinite(x)])) if np.isfinite(x).any() else None


def atari_game(env) -> str | None:
    """The Atari100k game an env plays (scored in human-normalised units), or None for other envs."""
    game = getattr(env, "game", None)
    return game if game in GAMES else None


def write_gif(real: np.ndarray, predicted: np.ndarray, context: int, path: str, scale: int = 2) -> None:
    """``real, predicted [T, 64, 64, 3]`` uint8 -> a GIF, real on top and the model below; the
    model's frames get a red border once it predicts open-loop (after ``context`` frames)."""
    from PIL import Image

    frames = []
    for t in range(real.shape[0]):
        pred = predicted[t].copy()
        if t >= context:
            for edge in (np.s_[:2], np.s_[-2:], np.s_[:, :2], np.s_[:, -2:]):
                pred[edge] = (255, 0, 0)
        both = np.concatenate([real[t], pred], 0).repeat(scale, 0).repeat(scale, 1)
        frames.append(Image.fromarray(both))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=120, loop=0)


def config_from_run(run: dict) -> WorldModelConfig:
    """The ``WorldModelConfig`` in a world-model run's ``run.json``."""
    return validate(from_mapping(run["config"]["world_model"]))


def run_world_model(config: WorldModelConfig, run_dir: str, seed: int = 0, resume: bool = False,
                    stop_after: int | None = None, progress: bool = True) -> dict:
    """Train ``config`` under ``run_dir``; returns the summary (also written to ``summary.json``).

    ``stop_after`` ends the run after that many chunks of this call (as a crash would: no final
    evaluation); ``resume`` continues from the newest checkpoint in ``run_dir``.
    """
    validate(config)
    record = {"world_model": to_fields(config), "seed": seed, "progress": progress}
    defaults = {"world_model": to_fields(WorldModelConfig())}
    with RunDir(run_dir, "world_model", record, resume, extendable=("world_model.total_steps",),
                defaults=defaults) as run:
        return _train(config, run, seed, stop_after, progress)


def _train(config: WorldModelConfig, run: RunDir, seed: int, stop_after: int | None, progress: bool) -> dict:
    parts = build(config)
    game = atari_game(parts.env)
    state = init(parts, jax.random.PRNGKey(seed))
    checkpoints = Checkpoints(os.path.join(run.path, "checkpoints"))
    resuming = run.resuming and checkpoints.latest_step() is not None
    if resuming:
        state = _like_checkpoint(state, checkpoints)
    writer = make_writer("tensorboard", run.path, run.config)
    prefill_steps = config.prefill_chunk_steps * config.num_envs
    bar = Progress(prefill_steps + config.num_chunks * config.updates_per_chunk * config.steps_per_update,
                   config.steps_per_update, enabled=progress)
    eval_env = None

    def evaluate(state) -> list[float]:
        nonlocal eval_env
        if eval_env is None:
            env, env_params = make_env(config, config.eval_envs)
            eval_env = jax.jit(make_evaluate(parts, env, env_params, config.eval_envs, config.eval_steps))
        returns = np.asarray(eval_env(state.params, jax.random.fold_in(state.key, 7)))
        return returns[np.isfinite(returns)].tolist()

    def log_evaluation(state) -> list:
        """``[env steps, mean return or None, episodes]``, logged to TensorBoard."""
        scores, steps = evaluate(state), int(state.env_steps) * config.num_envs
        if scores:
            writer.add_scalar("eval/return", np.mean(scores), steps)
            if game:
                writer.add_scalar("eval/hns", human_normalized_score(game, np.mean(scores)), steps)
        return [steps, _nanmean(scores), len(scores)]

    def scheduled_evaluation(state, index: int) -> list | None:
        # the last chunk's evaluation goes into the checkpoint like the others, so a run later extended
        # (``total_steps`` raised on resume) keeps it in its history
        last = index + 1 == config.num_chunks
        if last or (config.eval_every and (index + 1) % config.eval_every == 0):
            return log_evaluation(state)
        return None

    def restored(state, start: int):
        state = state.replace(replay=rb.resize(state.replay, config.capacity))
        # Atari's emulators live in C++ and cannot be checkpointed: new episodes everywhere. Pure JAX envs
        # are in the state and resume exactly where they were.
        return fresh_env(parts, state, jax.random.fold_in(jax.random.PRNGKey(seed), start)) if game else state

    train_chunk = make_chunk(parts, bar.on_update if progress else None)

    def chunk(state):
        state, metrics = train_chunk(state)
        if game:  # Atari scores in human-normalised units too (NaN where no episode ended)
            metrics["hns"] = human_normalized_score(game, np.asarray(metrics["episode_return"], np.float64))
        return state, metrics

    spec = LoopSpec(config.num_chunks, config.steps_per_update, headline="episode_return",
                    losses=("wm_loss", "actor_loss", "critic_loss"), sparse=("episode_return", "hns"),
                    step_offset=prefill_steps)
    try:
        if not resuming:
            state, _ = jax.jit(make_prefill(parts))(state)
        result = run_loop(chunk, state, spec, checkpoints, writer=writer, resume=run.resuming, stop_after=stop_after,
                          progress=bar, params=lambda s: s.params, run=run, restored=restored,
                          after_chunk=scheduled_evaluation)
        bar.close()
        state, finished = result.state, result.stopped == "finished"
        eval_history = list(result.after_chunk)
        if finished and (not eval_history or eval_history[-1][0] != int(state.env_steps) * config.num_envs):
            eval_history.append(log_evaluation(state))  # a run finished by a version that kept it out of checkpoints
    finally:
        checkpoints.close()
        bar.close()
        writer.close()

    train_returns = stack_history(result.history, "episode_return")
    finite = train_returns[np.isfinite(train_returns)]
    summary = {
        "kind": "world_model", "env": config.env_name, **({"game": game} if game else {}), "model": config.model,
        "seed": seed, "params_world_model": count_params(state.params["wm"]),
        "params_actor_critic": count_params(state.params["actor"]) + count_params(state.params["critic"]),
        "env_steps": int(state.env_steps) * config.num_envs, "updates": int(state.updates), "finished": finished,
        "stopped": result.stopped, "wall_time_s": result.wall_time_s,
        "train_episodes": int(finite.size),
        "train_return_last10": float(finite[-10:].mean()) if finite.size else None,
        "train_return_first10": float(finite[:10].mean()) if finite.size else None,
    }
    for name in ("wm_loss", "recon_loss", "reward_loss"):
        if result.history.get(name):
            summary[f"{name}_first_chunk"] = float(np.mean(result.history[name][0]))
            summary[f"{name}_last_chunk"] = float(np.mean(result.history[name][-1]))
    if finished:
        summary.update(eval_return=eval_history[-1][1], eval_episodes=eval_history[-1][2])
    score = summary.get("eval_return")
    if score is None:
        score = summary["train_return_last10"]
    summary["score"] = score
    summary["hns"] = human_normalized_score(game, score) if game and score is not None else None
    summary["eval_history"] = eval_history
    summary["config"] = dataclasses.asdict(config)
    run.write_summary(summary)

    _video(parts, state, config, run.path)
    if train_returns.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            steps = prefill_steps + np.arange(1, train_returns.size + 1) * config.steps_per_update
            learning_curve(steps, train_returns[None], os.path.join(run.path, "learning_curve.png"),
                           f"{config.model} on {config.env_name}")
    return summary


def open_world_model_run(run_dir: str) -> tuple[Parts, int, AgentState]:
    """``(parts, step, state)`` of a world-model run's newest checkpoint (:func:`restore_world_model_run`), the
    parts built from its ``run.json``; ``RunDirError`` where ``run_dir`` holds no run or another kind of run."""
    run = read_run(run_dir)
    if run["kind"] != "world_model":
        raise RunDirError(f"{run_dir!r} is a {run['kind']!r} run, not a world-model run")
    parts = build(config_from_run(run))
    return (parts, *restore_world_model_run(run_dir, parts))


def restore_world_model_run(run_dir: str, parts: Parts) -> tuple[int, AgentState]:
    """``(step, state)`` of a world-model run's newest checkpoint, read only, its replay as large as stored (an
    extended run holds its old length until its first new chunk is saved)."""
    checkpoints = Checkpoints(os.path.join(run_dir, "checkpoints"), create=False)
    try:
        step, state, _ = checkpoints.restore(_like_checkpoint(init(parts, jax.random.PRNGKey(0)), checkpoints))
    finally:
        checkpoints.close()
    return step, state


def evaluate_world_model_run(run_dir: str, run: dict, episodes: int, seed: int, deterministic: bool = False) -> dict:
    """Evaluate a world-model run's newest checkpoint (``run``: its ``run.json``): the returns of the episodes
    its policy finishes in ``eval_steps`` steps of ``max(episodes, eval_envs)`` fresh envs -> ``eval.json``;
    ``deterministic``: with the actor's likeliest actions."""
    config = config_from_run(run)
    parts = build(config)
    step, state = restore_world_model_run(run_dir, parts)
    envs_count = max(episodes, config.eval_envs)
    env, env_params = make_env(config, envs_count)
    evaluate = jax.jit(make_evaluate(parts, env, env_params, envs_count, config.eval_steps, deterministic))
    returns = np.asarray(evaluate(state.params, jax.random.PRNGKey(seed)))
    finished = returns[np.isfinite(returns)]
    game = atari_game(parts.env)
    stats = {"episodes": int(finished.size), "return_mean": float(finished.mean()) if finished.size else None,
             "return_ci95": float(1.96 * finished.std(ddof=1) / np.sqrt(finished.size)) if finished.size > 1 else None}
    if game and finished.size:
        stats["hns"] = float(human_normalized_score(game, finished.mean()))
    report = {"run": os.path.abspath(run_dir), "kind": "world_model", "checkpoint": step, "env": config.env_name,
              "model": config.model, "seed": seed, "deterministic": deterministic, "splits": {"train": stats}}
    write_json(os.path.join(run_dir, "eval.json"), report)
    return report


def _video(parts, state, config: WorldModelConfig, run_dir: str) -> None:
    """Open-loop prediction on a replay window: ``video_context`` observations seen, the rest imagined;
    its per-step MSE, and a GIF where the observations are RGB frames."""
    length = min(config.video_context + config.video_horizon, int(state.replay.size))
    _, window = rb.sample(state.replay, jax.random.PRNGKey(1), 1, length)
    predicted = jax.jit(open_loop, static_argnums=(0, 5))(
        parts, state.params["wm"], window["obs"], window["action"], window["first"],
        min(config.video_context, length - 1), jax.random.PRNGKey(2))
    if parts.obs_dtype == jnp.uint8 and parts.obs_shape[-1:] == (3,):
        write_gif(np.asarray(window["obs"][:, 0]), np.asarray(predicted[:, 0]), config.video_context,
                  os.path.join(run_dir, VIDEO_FILE))
    err = jnp.mean((predicted.astype(jnp.float32) - window["obs"].astype(jnp.float32)) ** 2,
                   axis=tuple(range(1, predicted.ndim)))
    with open(os.path.join(run_dir, "imagination_mse.json"), "w") as f:
        json.dump({"context": config.video_context, "mse_per_frame": np.asarray(err).round(2).tolist()}, f)
