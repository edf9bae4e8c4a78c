"""A complete Decision Transformer run in a directory: train through the one loop, evaluate per task."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.config import from_fields, to_fields
from ssmrl.agents.dt.train import DTData, DTParts, build, make_evaluate, prepare_data
from ssmrl.agents.params import count_params
from ssmrl.experiment import offline
from ssmrl.experiment.checkpoint import restore_latest
from ssmrl.experiment.config import DTRun
from ssmrl.experiment.logger import make_writer
from ssmrl.experiment.run_dir import RunDir


def setup_dt(run: DTRun) -> tuple[offline.OfflineSetup, DTData, DTParts]:
    config = run.dt
    setup = offline.load_setup(run)
    data = prepare_data(setup.datasets["train"][0], config.rtg_scale)
    parts = build(config, setup.card["obs_dim"], setup.card["act_dim"], setup.action_scale)
    return setup, data, parts


def evaluate_dt(run: DTRun, setup: offline.OfflineSetup, data: DTData, parts: DTParts, params: Any,
                episodes_per_task: dict[str, int], key: jax.Array) -> dict:
    """``{split: {"dt": return stats}}`` over ``episodes_per_task[split]`` episodes in each task."""
    config = parts.config
    results = {}
    for i, split in enumerate(offline.SPLITS):
        tasks, best, card = offline.split_tasks(setup, split)
        targets = offline.targets_for(run, best)
        evaluate = make_evaluate(parts.model, setup.env, config.context_len, config.rtg_scale,
                                 episodes_per_task[split], horizon=setup.card["horizon"])
        out = evaluate(params, tasks, jnp.asarray(targets), data.state_mean, data.state_std,
                       jax.random.fold_in(key, i))
        results[split] = {"dt": offline.return_stats(np.asarray(out["returns"]), targets, card)}
    return results


def run_dt(run: DTRun, run_dir: str, resume: bool = False, stop_after: int | None = None) -> dict:
    """Train and evaluate one DT run described by ``run`` (the checked config); returns the summary.

    ``stop_after`` ends training after that many chunks (as a crash would; ``finished: false``);
    ``resume`` continues from the newest checkpoint in ``run_dir``."""
    setup, data, parts = setup_dt(run)
    config = parts.config
    fields = to_fields(run)
    with RunDir(run_dir, "dt", fields, resume, defaults=to_fields(DTRun())) as directory:
        writer = make_writer("tensorboard", directory.path, fields)
        try:
            k_init, k_eval = jax.random.split(jax.random.PRNGKey(run.seed))
            state, result = offline.train_phase("dt", parts, data, parts.init(k_init),
                                                config.num_steps, config.steps_per_chunk, directory, writer,
                                                run.progress, stop_after)
            if result.stopped != "finished":
                return directory.write_summary(offline.stopped_summary("dt", result, config.steps_per_chunk,
                                                                       result.wall_time_s))
            episodes = {split: config.eval_episodes for split in offline.SPLITS}
            modes = evaluate_dt(run, setup, data, parts, state.params, episodes, k_eval)
            for split in offline.SPLITS:
                writer.add_scalar(f"eval/{split}_return", modes[split]["dt"]["return_mean"], result.updates)
        finally:
            writer.close()
        losses = offline.chunk_losses(result, config.steps_per_chunk)
        return directory.write_summary({
            "kind": "dt", "env": setup.card["env"], "dataset": run.dataset,
            "dataset_dir": os.path.abspath(run.dataset_dir), "model": config.backbone, "seed": run.seed,
            "params": count_params(state.params), "train_steps": result.updates,
            "train_seconds": result.wall_time_s, "wall_time_s": result.wall_time_s,
            "final_loss": losses[-1]["loss"], "losses": losses,
            "eval": {split: modes[split]["dt"] for split in offline.SPLITS}, "config": dataclasses.asdict(config),
            "finished": True, "stopped": result.stopped,
        })


def evaluate_saved_dt(values: dict, run_dir: str, episodes: int, seed: int) -> dict:
    """Rebuild a DT run from its config (``run.json``'s ``config``), restore its newest checkpoint, evaluate
    ``{split: {"dt": stats}}``."""
    run = from_fields(DTRun, values)
    setup, data, parts = setup_dt(run)
    step, state = restore_latest(os.path.join(run_dir, "checkpoints", "dt"), parts.init(jax.random.PRNGKey(0)))
    per_task = {split: -(-episodes // setup.datasets[split][1]["num_tasks"]) for split in offline.SPLITS}
    return {"checkpoint": step, "episodes_per_task": per_task,
            "splits": evaluate_dt(run, setup, data, parts, state.params, per_task, jax.random.PRNGKey(seed))}
