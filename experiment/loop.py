"""Run a jitted ``chunk(state) -> (state, metrics)`` repeatedly: progress, logs, checkpoints, resume.

``metrics`` leaves are ``[seeds, updates_in_chunk]``. The history of every metric is kept as nested
lists ``[chunk][seed][update]`` inside each checkpoint, so a resumed run continues its logs and its
learning curve exactly where the interrupted one stopped; the state (RNG keys included) is restored
bit for bit, so the resumed run reaches the same result as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import numpy as np
from tensorboardX import SummaryWriter
from tqdm.auto import tqdm

from experiment.checkpoint import Checkpoints


@dataclasses.dataclass
class RunResult:
    state: Any
    history: dict  # metric -> [chunk][seed][update]
    wall_time: float  # seconds of this process spent in chunks (compile included)
    train_seconds: float  # seconds spent in chunks after the first (compile excluded)
    train_env_steps: int  # env steps taken in those chunks


def stack_history(history: dict, name: str) -> np.ndarray:
    """``[chunk][seed][update]`` lists -> ``[seed, chunk * update]`` array."""
    chunks = np.asarray(history[name], dtype=np.float64)
    return np.concatenate(list(chunks), axis=-1) if chunks.size else np.zeros((0, 0))


def run_chunks(
    chunk: Callable[[Any], tuple[Any, dict]],
    state: Any,
    num_chunks: int,
    env_steps_per_update: int,
    checkpoints: Checkpoints,
    writer: SummaryWriter | None,
    resume: bool = False,
    stop_after: int | None = None,
    show_progress: bool = True,
) -> RunResult:
    """Run chunks ``[start, num_chunks)``, checkpointing after each; ``stop_after`` simulates a crash."""
    history: dict = {}
    start = 0
    if resume and checkpoints.latest_step() is not None:
        start, state, history = checkpoints.restore(state)
    bar = tqdm(total=num_chunks, initial=start, disable=not show_progress, desc="chunks", unit="chunk")
    wall = train_seconds = 0.0
    train_steps = 0
    updates_done = sum(len(h[0]) for h in history.get("episode_return", []))
    for index in range(start, num_chunks):
        if stop_after is not None and index - start >= stop_after:
            break
        t0 = time.perf_counter()
        state, metrics = chunk(state)
        metrics = jax.device_get(metrics)
        elapsed = time.perf_counter() - t0
        wall += elapsed
        updates = int(np.shape(metrics["episode_return"])[-1])
        if index > start:
            train_seconds += elapsed
            train_steps += updates * env_steps_per_update
        for name, value in metrics.items():
            history.setdefault(name, []).append(np.asarray(value, np.float64).tolist())
        if writer is not None:
            _log(writer, metrics, updates_done, env_steps_per_update)
        updates_done += updates
        checkpoints.save(index + 1, state, history)
        steps_per_s = env_steps_per_update * updates * np.shape(metrics["episode_return"])[0] / elapsed
        recent = np.asarray(metrics["episode_return"], np.float64)
        bar.set_postfix(env_steps=updates_done * env_steps_per_update,
                        ret=f"{np.nanmean(recent):.3f}" if np.isfinite(recent).any() else "n/a",
                        sps=f"{steps_per_s:,.0f}")
        bar.update(1)
    bar.close()
    return RunResult(state, history, wall, train_seconds, train_steps)


def _log(writer: SummaryWriter, metrics: dict, first_update: int, env_steps_per_update: int) -> None:
    returns = np.asarray(metrics["episode_return"], np.float64)
    seeds, updates = returns.shape
    for u in range(updates):
        step = (first_update + u + 1) * env_steps_per_update
        for name, value in metrics.items():
            column = np.asarray(value, np.float64)[:, u]
            if np.isfinite(column).any():
                writer.add_scalar(f"train/{name}", float(np.nanmean(column)), step)
        for s in range(seeds):
            if np.isfinite(returns[s, u]):
                writer.add_scalar(f"seed_{s}/episode_return", float(returns[s, u]), step)
    writer.flush()
