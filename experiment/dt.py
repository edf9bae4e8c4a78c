"""A complete Decision Transformer run in a directory: train (checkpointed, resumable), evaluate per task."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.config import from_fields, to_fields
from ssmrl.agents.dt.train import DTData, DTParts, build, make_evaluate, prepare_data
from ssmrl.agents.params import count_params
from ssmrl.experiment.config import DTRun
from ssmrl.experiment.offline import (
    SPLITS,
    OfflineSetup,
    load_setup,
    restore_state,
    return_stats,
    split_tasks,
    targets_for,
    train_chunks,
    write_run_file,
)


def setup_dt(run: DTRun) -> tuple[OfflineSetup, DTData, DTParts]:
    config = run.dt
    setup = load_setup(run)
    data = prepare_data(setup.datasets["train"][0], config.rtg_scale)
    parts = build(config, setup.card["obs_dim"], setup.card["act_dim"], setup.action_scale)
    return setup, data, parts


def evaluate_dt(run: DTRun, setup: OfflineSetup, data: DTData, parts: DTParts, params: Any,
                episodes_per_task: dict[str, int], key: jax.Array) -> dict:
    """``{split: {"dt": return stats}}`` over ``episodes_per_task[split]`` episodes in each task."""
    config = parts.config
    results = {}
    for i, split in enumerate(SPLITS):
        tasks, best, card = split_tasks(setup, split)
        targets = targets_for(run, best)
        evaluate = make_evaluate(parts.model, setup.env, config.context_len, config.rtg_scale,
                                 episodes_per_task[split], horizon=setup.card["horizon"])
        out = evaluate(params, tasks, jnp.asarray(targets), data.state_mean, data.state_std,
                       jax.random.fold_in(key, i))
        results[split] = {"dt": return_stats(np.asarray(out["returns"]), targets, card)}
    return results


def run_dt(run: DTRun, run_dir: str, resume: bool = False, stop_after: int | None = None) -> dict:
    """Train and evaluate one DT run described by ``run`` (the checked config); returns the summary."""
    from tensorboardX import SummaryWriter

    setup, data, parts = setup_dt(run)
    config = parts.config
    write_run_file(run_dir, "dt", to_fields(run))
    writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
    k_init, k_eval = jax.random.split(jax.random.PRNGKey(run.seed))
    num_chunks = -(-config.num_steps // config.steps_per_chunk)
    state, losses, seconds = train_chunks(parts.train_chunk, parts.init(k_init), data, num_chunks,
                                          config.steps_per_chunk, os.path.join(run_dir, "checkpoints", "dt"), writer,
                                          "dt", resume=resume, progress=run.progress,
                                          stop_after=stop_after)
    if len(losses) < num_chunks:
        writer.close()
        return {"finished": False, "losses": losses}
    episodes = {split: config.eval_episodes for split in SPLITS}
    modes = evaluate_dt(run, setup, data, parts, state.params, episodes, k_eval)
    for split in SPLITS:
        writer.add_scalar(f"eval/{split}_return", modes[split]["dt"]["return_mean"], config.num_steps)
    writer.close()
    summary = {
        "kind": "dt", "env": setup.card["env"], "dataset": run.dataset,
        "dataset_dir": os.path.abspath(run.dataset_dir), "model": config.backbone, "seed": run.seed,
        "params": count_params(state.params), "train_steps": num_chunks * config.steps_per_chunk,
        "train_seconds": seconds, "final_loss": losses[-1]["loss"], "losses": losses,
        "eval": {split: modes[split]["dt"] for split in SPLITS}, "config": dataclasses.asdict(config),
        "finished": True,
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def evaluate_saved_dt(values: dict, run_dir: str, episodes: int, seed: int) -> dict:
    """Rebuild a DT run from its config (``run.json``'s ``values``), restore its newest checkpoint, evaluate
    ``{split: {"dt": stats}}``."""
    run = from_fields(DTRun, values)
    setup, data, parts = setup_dt(run)
    step, state = restore_state(os.path.join(run_dir, "checkpoints", "dt"), parts.init(jax.random.PRNGKey(0)))
    per_task = {split: -(-episodes // setup.datasets[split][1]["num_tasks"]) for split in SPLITS}
    return {"checkpoint": step, "episodes_per_task": per_task,
            "splits": evaluate_dt(run, setup, data, parts, state.params, per_task, jax.random.PRNGKey(seed))}
