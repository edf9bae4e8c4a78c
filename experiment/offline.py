"""What the offline runs (DT, Meta-DT, Prompt-DT) share: datasets and tasks per split, targets, the
checkpointed training loop, the run file, and per-task return statistics.

A run directory holds ``run.json`` (``kind`` and the resolved config: enough to rebuild the run),
``checkpoints/<phase>/`` (orbax; the state and the loss history after every chunk), ``tensorboard/``,
``summary.json`` and, after ``train/evaluate.py``, ``eval.json`` / ``eval.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.config import OfflineRun

SPLITS = ("train", "test")
RUN_FILE = "run.json"


@dataclasses.dataclass(frozen=True)
class OfflineSetup:
    datasets: dict  # split -> (episodes by task, card)
    card: dict  # the train dataset's card
    env: Any
    action_scale: float

    @property
    def episodes_per_task(self) -> int:
        return int(self.card["episodes_per_task"])


def load_setup(run: OfflineRun) -> OfflineSetup:
    """Both splits of ``<dataset_dir>/<split>/<dataset>`` and the env they were collected in."""
    from ssmrl import envs
    from ssmrl.experiment.datasets import read_dataset

    datasets = {split: read_dataset(os.path.join(run.dataset_dir, split, run.dataset)) for split in SPLITS}
    card = datasets["train"][1]
    if card["env"] != run.env:
        raise ValueError(f"dataset {run.dataset_dir} is for env {card['env']!r}, not {run.env!r}")
    if card.get("episodes_per_task") is None:
        raise ValueError(f"dataset {run.dataset_dir}: every task needs the same number of episodes")
    env, _ = envs.make(card["env"], **card.get("env_options", {}))
    space = env.action_space(env.default_params)
    return OfflineSetup(datasets, card, env, float(np.max(np.abs(np.asarray(space.high)))))


def split_tasks(setup: OfflineSetup, split: str) -> tuple[Any, np.ndarray, dict]:
    """``(task params [N], target returns [N], card)`` of a split; targets = each task's best data return."""
    from ssmrl.experiment.datasets import params_from_arrays

    episodes, card = setup.datasets[split]
    template = setup.env.default_params
    tasks = jax.tree.map(lambda *x: jnp.stack(x), *[params_from_arrays(template, ep["params"]) for ep in episodes])
    return tasks, np.array([t["return_max"] for t in card["tasks"]], np.float32), card


def targets_for(run: OfflineRun, best: np.ndarray) -> np.ndarray:
    """``target_return`` everywhere if set, else the per-task best returns ``best``."""
    if run.target_return is None:
        return best
    return np.full(best.shape, run.target_return, np.float32)


def return_stats(returns: np.ndarray, targets: np.ndarray, card: dict) -> dict:
    """``returns [tasks, episodes]`` -> the summary entry of one split (and mode)."""
    per_task = returns.mean(1)
    return {
        "return_mean": float(returns.mean()),
        "return_std_over_tasks": float(per_task.std()),
        "return_ci95_over_tasks": float(1.96 * per_task.std(ddof=1) / np.sqrt(len(per_task)))
        if len(per_task) > 1 else 0.0,
        "per_task_return": per_task.tolist(),
        "targets": np.asarray(targets).tolist(),
        "data_return_mean": card["return_stats"]["return_mean"],
        "data_return_max_mean": float(np.mean([t["return_max"] for t in card["tasks"]])),
    }


def write_run_file(run_dir: str, kind: str, values: dict) -> None:
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, RUN_FILE), "w") as f:
        json.dump({"kind": kind, "values": values}, f, indent=2)


def train_chunks(chunk: Callable, state: Any, data: Any, num_chunks: int, steps_per_chunk: int, directory: str,
                 writer: Any, tag: str, resume: bool = False, progress: bool = True,
                 stop_after: int | None = None) -> tuple[Any, list[dict], float]:
    """Run ``chunk(state, data) -> (state, {"loss": [steps]})`` ``num_chunks`` times, checkpointing after each.

    ``resume`` continues after the newest checkpoint in ``directory`` (state and RNG restored bit for bit,
    so the result equals an uninterrupted run's); ``stop_after`` ends after that many chunks, as a crash
    would. Returns ``(state, losses [{step, loss}], seconds spent)``.
    """
    checkpoints = Checkpoints(directory)
    losses, start = [], 0
    try:
        if resume and checkpoints.latest_step() is not None:
            start, state, history = checkpoints.restore(state)
            losses = list(history["losses"])
        t0 = time.time()
        for c in range(start, num_chunks):
            if stop_after is not None and c - start >= stop_after:
                break
            state, metrics = chunk(state, data)
            loss = float(np.asarray(metrics["loss"]).mean())
            step = (c + 1) * steps_per_chunk
            losses.append({"step": step, "loss": loss})
            writer.add_scalar(f"{tag}/loss", loss, step)
            checkpoints.save(c + 1, state, {"losses": losses})
            if progress:
                print(f"[{tag}] step {step:6d}  loss {loss:.5f}  ({time.time() - t0:.0f}s)", flush=True)
    finally:
        checkpoints.close()
    return state, losses, time.time() - t0


def restore_state(directory: str, template: Any) -> tuple[int, Any]:
    """The newest checkpointed state under ``directory`` (structure of ``template``)."""
    checkpoints = Checkpoints(directory)
    try:
        step, state, _ = checkpoints.restore(template)
    finally:
        checkpoints.close()
    return step, state
