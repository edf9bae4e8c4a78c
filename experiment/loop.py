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

from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.progress import Progress


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
    writer: Any | None,
    resume: bool = False,
    stop_after: int | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run chunks ``[start, num_chunks)``, checkpointing after each; ``stop_after`` simulates a crash.

    ``progress`` (built with the chunk, which may move it after every update) is set to the exact
    step count after each chunk.
    """
    history: dict = {}
    start = 0
    if resume and checkpoints.latest_step() is not None:
        start, state, history = checkpoints.restore(state)
    wall = train_seconds = 0.0
    train_steps = 0
    updates_done = sum(len(h[0]) for h in history.get("episode_return", []))
    if progress is not None:
        progress.start_at(updates_done * progress.steps_per_update)
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
        steps_per_s = env_steps_per_update * updates * np.shape(metrics["episode_return"])[0] / elapsed
        if writer is not None:
            _log(writer, metrics, updates_done, env_steps_per_update)
            # the first chunk's rate includes compilation: logged too, it is what the user waited
            writer.add_scalar("perf/steps_per_s", steps_per_s, (updates_done + updates) * env_steps_per_update)
        updates_done += updates
        checkpoints.save(index + 1, state, history)
        if progress is not None:
            progress.chunk_done(updates_done * progress.steps_per_update,
                                np.asarray(metrics["episode_return"], np.float64)[:, -1])
    return RunResult(state, history, wall, train_seconds, train_steps)


def _log(writer: Any, metrics: dict, first_update: int, env_steps_per_update: int) -> None:
    """Every metric after every update. ``episode_return`` is NaN when no episode ended in an update:
    that is no value, so it is skipped; any other non-finite value is logged as it is."""
    returns = np.asarray(metrics["episode_return"], np.float64)
    seeds, updates = returns.shape
    for u in range(updates):
        step = (first_update + u + 1) * env_steps_per_update
        for name, value in metrics.items():
            column = np.asarray(value, np.float64)[:, u]
            if name != "episode_return":
                writer.add_scalar(f"train/{name}", float(column.mean()), step)  # a NaN loss shows as NaN
            elif not np.isnan(column).all():
                writer.add_scalar(f"train/{name}", float(np.nanmean(column)), step)
        for s in range(seeds):
            if not np.isnan(returns[s, u]):
                writer.add_scalar(f"seed_{s}/episode_return", float(returns[s, u]), step)
    writer.flush()
