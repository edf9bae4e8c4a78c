"""A complete Meta-DT or Prompt-DT run in a directory.

Meta-DT: train the context world model (``checkpoints/world_model``), annotate the dataset with z and
the highest-error prompt windows, train the prompted DT (``checkpoints/dt``), evaluate zero-shot and
few-shot per task. Prompt-DT: only the DT phase, evaluated with prompts from each task's dataset.
Both phases train through the one loop (``experiment.offline.train_phase``), checkpointed after every
chunk; ``resume`` continues the unfinished one.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.config import from_fields, to_fields
from ssmrl.agents.dt.train import DTData, prepare_data
from ssmrl.agents.meta_dt.evaluate import dataset_prompts, make_meta_evaluate, make_prompt_evaluate
from ssmrl.agents.meta_dt.prompt import best_window
from ssmrl.agents.meta_dt.train import MetaData, MetaDTParts, build, prepare_world_model_data, reward_scale
from ssmrl.agents.meta_dt.world_model import WorldModelData, WorldModelParts, build_world_model
from ssmrl.agents.params import count_params
from ssmrl.experiment.checkpoint import restore_latest
from ssmrl.experiment.config import MetaDTRun
from ssmrl.experiment.logger import make_writer
from ssmrl.experiment.offline import (
    SPLITS,
    OfflineSetup,
    chunk_losses,
    load_setup,
    return_stats,
    split_tasks,
    stopped_summary,
    targets_for,
    train_phase,
)
from ssmrl.experiment.run_dir import RunDir


@dataclasses.dataclass(frozen=True)
class MetaSetup:
    offline: OfflineSetup
    data: DTData
    world_model_data: WorldModelData | None  # the DT's episodes (annotated with z and prompts)
    world_model_train_data: WorldModelData | None  # those plus `world_model_extra_datasets`
    world_model_train_tasks: np.ndarray | None  # [episodes of world_model_train_data] task index
    reward_scale: float
    world_model: WorldModelParts | None  # None for Prompt-DT
    parts: MetaDTParts


def setup_meta(run: MetaDTRun) -> MetaSetup:
    # Prompt-DT never drops its prompt: prompt_dropout is Meta-DT's setting.
    config = run.meta if run.meta.method == "meta_dt" else dataclasses.replace(run.meta, prompt_dropout=0.0)
    wm_config, dt = run.world_model, run.dt
    offline = load_setup(run)
    card = offline.card
    if config.prompt_len > card["horizon"]:
        raise ValueError(f"meta.prompt_len ({config.prompt_len}) must be <= the episode horizon ({card['horizon']})")
    episodes = offline.datasets["train"][0]
    data = prepare_data(episodes, dt.rtg_scale)
    parts = build(config, dt, card["obs_dim"], card["act_dim"], offline.action_scale, wm_config.task_dim,
                  offline.episodes_per_task)
    if config.method == "prompt_dt":
        return MetaSetup(offline, data, None, None, None, 1.0, None, parts)
    scale = reward_scale(episodes)
    world_model = build_world_model(wm_config, card["obs_dim"], card["act_dim"])
    own = prepare_world_model_data(episodes, data, scale)
    train_data, train_tasks = _with_extra_datasets(run, own, data, scale, card, dt.rtg_scale)
    return MetaSetup(offline, data, own, train_data, train_tasks, scale, world_model, parts)


def _with_extra_datasets(run: MetaDTRun, own: WorldModelData, data: DTData, scale: float, card: dict,
                         rtg_scale: float) -> tuple[WorldModelData, np.ndarray]:
    """The world model's training episodes: the DT's plus the train split of every quality named in
    ``world_model_extra_datasets`` (e.g. ``[random]``: behaviour off the experts' paths), normalised as
    the DT's; and the task index of every episode."""
    from ssmrl.experiment.datasets import read_dataset

    parts = [own]
    tasks = [np.arange(own.rewards.shape[0]) // card["episodes_per_task"]]
    for quality in run.world_model_extra_datasets:
        directory = os.path.join(run.dataset_dir, "train", quality)
        if not os.path.isdir(directory):
            raise ValueError(f"world_model_extra_datasets: no dataset {directory!r} (qualities written by "
                             "train/collect.py: medium, expert, medium_expert, random)")
        extra, extra_card = read_dataset(directory)
        if extra_card["horizon"] != card["horizon"] or extra_card["env"] != card["env"]:
            raise ValueError(f"world_model_extra_datasets: {directory!r} is not from the same env and horizon")
        extra_data = prepare_data(extra, rtg_scale, stats=(data.state_mean, data.state_std))
        parts.append(prepare_world_model_data(extra, extra_data, scale))
        tasks.append(np.repeat(np.arange(len(extra)), extra_card["episodes_per_task"]))  # extra: by task
    if len(parts) == 1:
        return own, tasks[0]
    return jax.tree.map(lambda *x: jnp.concatenate(x), *parts), np.concatenate(tasks)


def annotate(ms: MetaSetup, wm_params: Any, seed: int) -> MetaData:
    """The DT's training data with z per step and each episode's highest-error prompt window (Meta-DT).

    With ``task_context=task`` the z of step t of an episode of task i is the z the world model gives
    a random step of a random episode of task i in its training data (``seed`` picks them)."""
    if ms.world_model is None:
        return MetaData(ms.data, None, None)
    # One pass over the world model's training episodes; the DT's own come first.
    pool_z, pool_errors = ms.world_model.annotate(wm_params, ms.world_model_train_data)
    n = ms.world_model_data.rewards.shape[0]
    z, errors = pool_z[:n], pool_errors[:n]
    if ms.parts.config.task_context == "task":
        z = task_context_z(pool_z, ms.world_model_train_tasks, ms.offline.episodes_per_task, z.shape[:2],
                           np.random.default_rng(seed))
    return MetaData(ms.data, z, best_window(errors, ms.parts.config.prompt_len))


def task_context_z(pool_z: jax.Array, pool_tasks: np.ndarray, episodes_per_task: int, shape: tuple[int, int],
                   rng: np.random.Generator) -> jax.Array:
    """``pool_z [M, T, Z]`` (episodes of task ``pool_tasks [M]``) -> ``[N, T', Z]`` for ``shape = (N, T')``
    episodes stacked task by task: every step gets the z of a random step of a random same-task episode."""
    n, horizon = shape
    task = np.repeat(np.arange(n // episodes_per_task), episodes_per_task)[:, None]  # [N, 1]
    by_task = np.stack([np.flatnonzero(pool_tasks == i) for i in range(n // episodes_per_task)])  # [tasks, m]
    episode = by_task[task, rng.integers(0, by_task.shape[1], (n, horizon))]
    step = rng.integers(0, pool_z.shape[1], (n, horizon))
    return pool_z[episode, step]


def evaluate_meta(run: MetaDTRun, ms: MetaSetup, params: Any, wm_params: Any, episodes_per_task: dict[str, int],
                  key: jax.Array) -> dict:
    """``{split: {mode: return stats}}``; modes ``zero_shot``/``few_shot`` (Meta-DT) or ``prompted``."""
    config, dt = ms.parts.config, ms.parts.dt_config
    horizon, mean, std = ms.offline.card["horizon"], ms.data.state_mean, ms.data.state_std
    results = {}
    for i, split in enumerate(SPLITS):
        tasks, best, card = split_tasks(ms.offline, split)
        targets = jnp.asarray(targets_for(run, best))
        k_prompt, k_run = jax.random.split(jax.random.fold_in(key, i))
        n_eps = episodes_per_task[split]
        if ms.world_model is not None:
            evaluate = make_meta_evaluate(ms.parts, ms.world_model, ms.offline.env, horizon, ms.reward_scale, n_eps)
            out = evaluate(params, wm_params, tasks, targets, mean, std, k_run)
        else:
            split_data = prepare_data(ms.offline.datasets[split][0], dt.rtg_scale, stats=(mean, std))
            prompts = dataset_prompts(split_data, ms.offline.episodes_per_task, n_eps, config.prompt_len, k_prompt)
            evaluate = make_prompt_evaluate(ms.parts, ms.offline.env, horizon, n_eps)
            out = evaluate(params, tasks, targets, prompts, mean, std, k_run)
        results[split] = {mode: return_stats(np.asarray(r), np.asarray(targets), card)
                          for mode, r in out.items() if mode != "prompt_start"}
    return results


def run_meta_dt(run: MetaDTRun, run_dir: str, resume: bool = False, stop_after: int | None = None) -> dict:
    """Train and evaluate one Meta-DT / Prompt-DT run (``run``: the checked config); returns the summary.

    ``stop_after`` ends the running phase after that many chunks of this call (as a crash would; the
    summary says ``finished: false``); ``resume`` continues the unfinished phase."""
    ms = setup_meta(run)
    config, dt = ms.parts.config, ms.parts.dt_config
    fields = to_fields(run)
    with RunDir(run_dir, "meta_dt", fields, resume, defaults=to_fields(MetaDTRun())) as directory:
        writer = make_writer("tensorboard", directory.path, fields)
        try:
            k_wm, k_init, k_eval = jax.random.split(jax.random.PRNGKey(run.seed), 3)
            wm_params, wm_summary, wm_wall = None, None, 0.0
            if ms.world_model is not None:
                wm = ms.world_model.config
                wm_state, wm_result = train_phase("world_model", ms.world_model, ms.world_model_train_data,
                                                  ms.world_model.init(k_wm), wm.num_steps, wm.steps_per_chunk,
                                                  directory, writer, run.progress, stop_after)
                wm_wall = wm_result.wall_time_s
                if wm_result.stopped != "finished":
                    return directory.write_summary(stopped_summary("meta_dt", wm_result, wm.steps_per_chunk, wm_wall))
                wm_params = wm_state.params
                losses = chunk_losses(wm_result, wm.steps_per_chunk)
                wm_summary = {"final_loss": losses[-1]["loss"], "losses": losses, "train_seconds": wm_wall,
                              "params": count_params(wm_params), "config": dataclasses.asdict(wm)}
            data = annotate(ms, wm_params, run.seed)
            state, result = train_phase("dt", ms.parts, data, ms.parts.init(k_init),
                                        dt.num_steps, dt.steps_per_chunk, directory, writer, run.progress, stop_after)
            wall = wm_wall + result.wall_time_s
            if result.stopped != "finished":
                return directory.write_summary(stopped_summary("meta_dt", result, dt.steps_per_chunk, wall))
            results = evaluate_meta(run, ms, state.params, wm_params, {s: dt.eval_episodes for s in SPLITS}, k_eval)
            for split, modes in results.items():
                for mode, stats in modes.items():
                    writer.add_scalar(f"eval/{split}_{mode}_return", stats["return_mean"], result.updates)
        finally:
            writer.close()
        losses = chunk_losses(result, dt.steps_per_chunk)
        return directory.write_summary({
            "kind": "meta_dt", "method": config.method, "env": ms.offline.card["env"], "dataset": run.dataset,
            "dataset_dir": os.path.abspath(run.dataset_dir), "model": dt.backbone, "seed": run.seed,
            "params": count_params(state.params), "train_steps": result.updates,
            "train_seconds": result.wall_time_s, "wall_time_s": wall, "final_loss": losses[-1]["loss"],
            "losses": losses, "eval": results, "world_model": wm_summary, "config": dataclasses.asdict(config),
            "dt_config": dataclasses.asdict(dt), "finished": True, "stopped": result.stopped,
        })


def evaluate_saved_meta(values: dict, run_dir: str, episodes: int, seed: int) -> dict:
    """Rebuild a Meta-DT / Prompt-DT run from its config (``run.json``'s ``config``), restore its newest
    checkpoints, evaluate ``{split: {mode: stats}}``."""
    run = from_fields(MetaDTRun, values)
    ms = setup_meta(run)
    wm_params = None
    if ms.world_model is not None:
        _, wm_state = restore_latest(os.path.join(run_dir, "checkpoints", "world_model"),
                                     ms.world_model.init(jax.random.PRNGKey(0)))
        wm_params = wm_state.params
    step, state = restore_latest(os.path.join(run_dir, "checkpoints", "dt"), ms.parts.init(jax.random.PRNGKey(0)))
    per_task = {split: -(-episodes // ms.offline.datasets[split][1]["num_tasks"]) for split in SPLITS}
    return {"checkpoint": step, "episodes_per_task": per_task,
            "splits": evaluate_meta(run, ms, state.params, wm_params, per_task, jax.random.PRNGKey(seed))}
