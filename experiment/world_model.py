"""A complete world-model run in a directory: prefill, train in chunks, log, checkpoint, resume,
evaluate, and write ``summary.json``, a learning curve and the imagined-vs-real GIF.

Any registered env with discrete actions; Atari runs also report human-normalised scores.
Resume restores everything but the Atari emulators (parameters, optimisers, replay, DFS counts,
RNG key, step counters): the C++ emulators cannot be saved, so a resumed run resets its envs and
the policy's carry, i.e. starts new episodes where the interrupted run was mid-episode.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from tensorboardX import SummaryWriter
from tqdm.auto import tqdm

from ssmrl.agents.params import count_params
from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import (
    build,
    fresh_env,
    init,
    make_chunk,
    make_env,
    make_evaluate,
    make_prefill,
    open_loop,
)
from ssmrl.agents.world_model.config import WorldModelConfig, validate
from ssmrl.envs.atari.scores import GAMES, human_normalized_score
from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.plots import learning_curve

RUN_FILE = "run.json"
VIDEO_FILE = "imagination.gif"


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


def run_world_model(config: WorldModelConfig, run_dir: str, seed: int = 0, resume: bool = False,
                    stop_after: int | None = None, progress: bool = True) -> dict:
    """Train ``config`` under ``run_dir``; returns the summary (also written to ``summary.json``).

    ``stop_after`` ends the run after that many chunks of this call (as a crash would: no final
    evaluation); ``resume`` continues from the newest checkpoint in ``run_dir``.
    """
    validate(config)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, RUN_FILE), "w") as f:
        json.dump({"config": dataclasses.asdict(config), "seed": seed}, f, indent=2)
    t_start = time.perf_counter()
    parts = build(config)
    game = atari_game(parts.env)
    state = init(parts, jax.random.PRNGKey(seed))
    chunk = make_chunk(parts)
    checkpoints = Checkpoints(os.path.join(run_dir, "checkpoints"))
    writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
    eval_env = None
    history: dict = {"eval": []}
    start = 0
    if resume and checkpoints.latest_step() is not None:
        start, state, history = checkpoints.restore(state)
        state = fresh_env(parts, state, jax.random.fold_in(jax.random.PRNGKey(seed), start))
    else:
        state, _ = jax.jit(make_prefill(parts))(state)

    def evaluate(state) -> list[float]:
        nonlocal eval_env
        if eval_env is None:
            env, env_params = make_env(config, config.eval_envs)
            eval_env = jax.jit(make_evaluate(parts, env, env_params, config.eval_envs, config.eval_steps))
        returns = np.asarray(eval_env(state.params, jax.random.fold_in(state.key, 7)))
        return returns[np.isfinite(returns)].tolist()

    def env_steps(state) -> int:
        return int(state.env_steps) * config.num_envs

    bar = tqdm(total=config.num_chunks, initial=start, disable=not progress, desc="chunks", unit="chunk")
    index = start
    for index in range(start, config.num_chunks):
        if stop_after is not None and index - start >= stop_after:
            break
        first_update = int(state.updates)
        state, metrics = chunk(state)
        metrics = {k: np.asarray(v, np.float64) for k, v in jax.device_get(metrics).items()}
        for u in range(config.updates_per_chunk):
            step = config.prefill_chunk_steps * config.num_envs + (first_update + u + 1) * config.steps_per_update
            for name, value in metrics.items():
                if np.isfinite(value[u]):
                    writer.add_scalar(f"train/{name}", value[u], step)
            if game and np.isfinite(metrics["episode_return"][u]):
                writer.add_scalar("train/hns", human_normalized_score(game, metrics["episode_return"][u]), step)
        for name, value in metrics.items():
            history.setdefault(name, []).append(value.tolist())
        if config.eval_every and (index + 1) % config.eval_every == 0 and index + 1 < config.num_chunks:
            scores = evaluate(state)
            history["eval"].append([env_steps(state), _nanmean(scores), len(scores)])
            if scores:
                writer.add_scalar("eval/return", np.mean(scores), env_steps(state))
                if game:
                    writer.add_scalar("eval/hns", human_normalized_score(game, np.mean(scores)), env_steps(state))
        writer.flush()
        checkpoints.save(index + 1, state, history)
        bar.set_postfix(env_steps=env_steps(state), wm=f"{metrics['wm_loss'].mean():.1f}",
                        ret=f"{_nanmean(metrics['episode_return'])}")
        bar.update(1)
    bar.close()
    finished = int(state.updates) >= config.num_chunks * config.updates_per_chunk
    checkpoints.close()

    train_returns = np.concatenate([np.asarray(r, np.float64) for r in history.get("episode_return", [])] or
                                   [np.zeros(0)])
    finite = train_returns[np.isfinite(train_returns)]
    summary = {
        "env": config.env_name, **({"game": game} if game else {}), "model": config.model, "seed": seed,
        "params_world_model": count_params(state.params["wm"]),
        "params_actor_critic": count_params(state.params["actor"]) + count_params(state.params["critic"]),
        "env_steps": env_steps(state), "updates": int(state.updates), "finished": finished,
        "wall_time_s": time.perf_counter() - t_start,
        "train_episodes": int(finite.size),
        "train_return_last10": float(finite[-10:].mean()) if finite.size else None,
        "train_return_first10": float(finite[:10].mean()) if finite.size else None,
    }
    for name in ("wm_loss", "recon_loss", "reward_loss"):
        if history.get(name):
            summary[f"{name}_first_chunk"] = float(np.mean(history[name][0]))
            summary[f"{name}_last_chunk"] = float(np.mean(history[name][-1]))
    if finished:
        scores = evaluate(state)
        history["eval"].append([env_steps(state), _nanmean(scores), len(scores)])
        summary.update(eval_return=_nanmean(scores), eval_episodes=len(scores))
        if scores:
            writer.add_scalar("eval/return", np.mean(scores), env_steps(state))
            if game:
                writer.add_scalar("eval/hns", human_normalized_score(game, np.mean(scores)), env_steps(state))
    score = summary.get("eval_return")
    if score is None:
        score = summary["train_return_last10"]
    summary["score"] = score
    summary["hns"] = human_normalized_score(game, score) if game and score is not None else None
    summary["eval_history"] = history["eval"]
    summary["config"] = dataclasses.asdict(config)
    writer.close()
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    _video(parts, state, config, run_dir)
    if train_returns.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            steps = config.prefill_chunk_steps * config.num_envs + np.arange(1, train_returns.size + 1) * \
                config.steps_per_update
            learning_curve(steps, train_returns[None], os.path.join(run_dir, "learning_curve.png"),
                           f"{config.model} on {config.env_name}")
    return summary


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
