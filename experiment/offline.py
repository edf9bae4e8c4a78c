"""What the offline runs (DT, Meta-DT, Prompt-DT) share: datasets and tasks per split, targets, a
training phase through the one loop, and per-task return statistics.

A run directory (``experiment.run_dir``) holds ``run.json`` (``kind`` and the resolved config: enough to
rebuild the run), ``checkpoints/<phase>/`` (orbax; the state and the loss history after every chunk),
``tensorboard/``, ``summary.json`` and, after ``train/evaluate.py``, ``eval.json`` / ``eval.png``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.config import OfflineRun
from ssmrl.experiment.loop import LoopResult, LoopSpec, run_loop
from ssmrl.experiment.progress import Progress
from ssmrl.experiment.run_dir import RunDir

SPLITS = ("train", "test")


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


def train_phase(name: str, parts: Any, data: Any, state: Any, num_steps: int, steps_per_chunk: int, run: RunDir,
                writer: Any, progress: bool, stop_after: int | None = None) -> tuple[Any, LoopResult]:
    """One offline training phase (``name``: ``dt`` or ``world_model``) of ``parts`` (``train_chunk(state,
    data) -> (state, {"loss": [steps], ...})`` and ``reporting_chunk``) through the one loop, checkpointed
    under ``checkpoints/<name>``."""
    num_chunks = -(-num_steps // steps_per_chunk)
    spec = LoopSpec(num_chunks, 1, headline="loss", losses=("loss",), prefix=name)
    bar = Progress(num_chunks * steps_per_chunk, 1, enabled=progress, headline="loss", desc=f"{name} steps")
    train = parts.reporting_chunk(bar.on_update) if progress else parts.train_chunk
    checkpoints = Checkpoints(os.path.join(run.path, "checkpoints", name))
    try:
        result = run_loop(lambda s: train(s, data), state, spec, checkpoints, writer=writer, resume=run.resuming,
                          stop_after=stop_after, progress=bar, params=lambda s: s.params, run=run)
    finally:
        checkpoints.close()
        bar.close()
    return result.state, result


def chunk_losses(result: LoopResult, steps_per_chunk: int) -> list[dict]:
    """``[{step, loss}]``: the mean loss of every chunk, at the step that ends it."""
    return [{"step": (c + 1) * steps_per_chunk, "loss": float(np.mean(losses))}
            for c, losses in enumerate(result.history.get("loss", []))]


def stopped_summary(kind: str, result: LoopResult, steps_per_chunk: int, wall_time_s: float) -> dict:
    """The summary of an offline run stopped before its end (``stop_after``)."""
    return {"kind": kind, "finished": False, "stopped": result.stopped, "train_steps": result.updates,
            "losses": chunk_losses(result, steps_per_chunk), "wall_time_s": wall_time_s}
