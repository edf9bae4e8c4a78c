"""A complete Decision Transformer run in a directory: train through the one loop, evaluate per task."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.dt.train import DTConfig, DTData, DTParts, build, from_mapping, make_evaluate, prepare_data
from ssmrl.agents.params import count_params
from ssmrl.experiment import offline
from ssmrl.experiment.checkpoint import restore_latest
from ssmrl.experiment.logger import make_writer
from ssmrl.experiment.run_dir import RunDir


def dt_config(values: dict) -> DTConfig:
    """The ``dt`` block with the run's ``backbone`` and ``backbone_options``, validated."""
    return from_mapping(dict(values["dt"], backbone=values["backbone"],
                             backbone_options=values.get("backbone_options") or {}))


def setup_dt(values: dict) -> tuple[offline.OfflineSetup, DTData, DTParts]:
    config = dt_config(values)
    setup = offline.load_setup(values)
    data = prepare_data(setup.datasets["train"][0], config.rtg_scale)
    parts = build(config, setup.card["obs_dim"], setup.card["act_dim"], setup.action_scale)
    return setup, data, parts


def evaluate_dt(values: dict, setup: offline.OfflineSetup, data: DTData, parts: DTParts, params: Any,
                episodes_per_task: dict[str, int], key: jax.Array) -> dict:
    """``{split: {"dt": return stats}}`` over ``episodes_per_task[split]`` episodes in each task."""
    config = parts.config
    results = {}
    for i, split in enumerate(offline.SPLITS):
        tasks, best, card = offline.split_tasks(setup, split)
        targets = offline.targets_for(values, best)
        evaluate = make_evaluate(parts.model, setup.env, config.context_len, config.rtg_scale,
                                 episodes_per_task[split], horizon=setup.card["horizon"])
        out = evaluate(params, tasks, jnp.asarray(targets), data.state_mean, data.state_std,
                       jax.random.fold_in(key, i))
        results[split] = {"dt": offline.return_stats(np.asarray(out["returns"]), targets, card)}
    return results


def run_dt(values: dict, run_dir: str, resume: bool = False, stop_after: int | None = None) -> dict:
    """Train and evaluate one DT run described by ``values`` (the resolved config); returns the summary.

    ``stop_after`` ends training after that many chunks (as a crash would; ``finished: false``);
    ``resume`` continues from the newest checkpoint in ``run_dir``."""
    setup, data, parts = setup_dt(values)
    config = parts.config
    with RunDir(run_dir, "dt", values, resume) as run:
        writer = make_writer("tensorboard", run.path, values)
        try:
            k_init, k_eval = jax.random.split(jax.random.PRNGKey(int(values["seed"])))
            state, result = offline.train_phase("dt", lambda s: parts.train_chunk(s, data), parts.init(k_init),
                                        config.num_steps, config.steps_per_chunk, run, writer,
                                        values.get("progress", True), stop_after)
            if result.stopped != "finished":
                return run.write_summary(offline.stopped_summary("dt", result, config.steps_per_chunk,
                                                                 result.wall_time_s))
            episodes = {split: config.eval_episodes for split in offline.SPLITS}
            modes = evaluate_dt(values, setup, data, parts, state.params, episodes, k_eval)
            for split in offline.SPLITS:
                writer.add_scalar(f"eval/{split}_return", modes[split]["dt"]["return_mean"], result.updates)
        finally:
            writer.close()
        losses = offline.chunk_losses(result, config.steps_per_chunk)
        return run.write_summary({
            "kind": "dt", "env": setup.card["env"], "dataset": values["dataset"],
            "data_dir": os.path.abspath(values["data_dir"]), "backbone": config.backbone,
            "seed": int(values["seed"]), "params": count_params(state.params), "train_steps": result.updates,
            "train_seconds": result.wall_time_s, "wall_time_s": result.wall_time_s,
            "final_loss": losses[-1]["loss"], "losses": losses,
            "eval": {split: modes[split]["dt"] for split in offline.SPLITS}, "config": dataclasses.asdict(config),
            "finished": True, "stopped": result.stopped,
        })


def evaluate_saved_dt(values: dict, run_dir: str, episodes: int, seed: int) -> dict:
    """Rebuild a DT run from its config, restore its newest checkpoint, evaluate ``{split: {"dt": stats}}``."""
    setup, data, parts = setup_dt(values)
    step, state = restore_latest(os.path.join(run_dir, "checkpoints", "dt"), parts.init(jax.random.PRNGKey(0)))
    per_task = {split: -(-episodes // setup.datasets[split][1]["num_tasks"]) for split in offline.SPLITS}
    return {"checkpoint": step, "episodes_per_task": per_task,
            "splits": evaluate_dt(values, setup, data, parts, state.params, per_task, jax.random.PRNGKey(seed))}
