"""Decision Transformer on our own datasets:
``python train/dt.py env=tasks/point_robot dataset=expert backbone=transformer preset=small data_dir=DIR``.

Trains on ``DIR/train/<dataset>`` (written by ``train/collect.py``), then rolls the policy out on the
train tasks and on the held-out test tasks (task params from ``DIR/test/<dataset>``) with the target
return = the best return in that task's data (or ``target_return``), and writes ``summary.json``
(returns per split and task, the data's returns for reference, the loss curve) into the run dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SPLITS = ("train", "test")


def run_dt(values: dict, run_dir: str) -> dict:
    """Train and evaluate one DT run described by ``values`` (the resolved config); returns the summary."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from tensorboardX import SummaryWriter

    import envs
    from agents.dt.train import build, from_mapping, make_evaluate, prepare_data
    from experiment.datasets import params_from_arrays, read_dataset

    dt_values = dict(values["dt"], backbone=values["backbone"], backbone_options=values.get("backbone_options") or {})
    config = from_mapping(dt_values)
    datasets = {split: read_dataset(os.path.join(values["data_dir"], split, values["dataset"])) for split in SPLITS}
    train_eps, card = datasets["train"]
    if card["env"] != values["env"]:
        raise ValueError(f"dataset {values['data_dir']} is for env {card['env']!r}, not {values['env']!r}")
    env, _ = envs.make(card["env"], **card.get("env_options", {}))
    space = env.action_space(env.default_params)
    action_scale = float(np.max(np.abs(np.asarray(space.high))))
    data = prepare_data(train_eps, config.rtg_scale)
    parts = build(config, card["obs_dim"], card["act_dim"], action_scale)
    evaluate = make_evaluate(parts.model, env, config.context_len, config.rtg_scale, config.eval_episodes,
                             horizon=card["horizon"])

    os.makedirs(run_dir, exist_ok=True)
    writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
    key = jax.random.PRNGKey(int(values["seed"]))
    k_init, k_eval = jax.random.split(key)
    state = parts.init(k_init)
    num_chunks = -(-config.num_steps // config.steps_per_chunk)
    losses, t0 = [], time.time()
    for c in range(num_chunks):
        state, metrics = parts.train_chunk(state, data)
        loss = np.asarray(metrics["loss"])
        step = (c + 1) * config.steps_per_chunk
        losses.append({"step": step, "loss": float(loss.mean())})
        writer.add_scalar("train/loss", float(loss.mean()), step)
        if values.get("progress", True):
            print(f"[dt] step {step:6d}  loss {loss.mean():.5f}  ({time.time() - t0:.0f}s)", flush=True)
    train_seconds = time.time() - t0

    results = {}
    for i, split in enumerate(SPLITS):
        episodes, split_card = datasets[split]
        tasks = jax.tree.map(lambda *x: jnp.stack(x),
                             *[params_from_arrays(env.default_params, ep["params"]) for ep in episodes])
        if values.get("target_return") is None:
            targets = np.array([t["return_max"] for t in split_card["tasks"]], np.float32)
        else:
            targets = np.full((len(episodes),), float(values["target_return"]), np.float32)
        out = evaluate(state.params, tasks, jnp.asarray(targets), data.state_mean, data.state_std,
                       jax.random.fold_in(k_eval, i))
        returns = np.asarray(out["returns"])  # [tasks, episodes]
        results[split] = {
            "return_mean": float(returns.mean()),
            "return_std_over_tasks": float(returns.mean(1).std()),
            "per_task_return": returns.mean(1).tolist(),
            "targets": targets.tolist(),
            "data_return_mean": split_card["return_stats"]["return_mean"],
            "data_return_max_mean": float(np.mean([t["return_max"] for t in split_card["tasks"]])),
        }
        writer.add_scalar(f"eval/{split}_return", results[split]["return_mean"], config.num_steps)
    writer.close()
    summary = {
        "env": card["env"], "dataset": values["dataset"], "data_dir": os.path.abspath(values["data_dir"]),
        "backbone": config.backbone, "seed": int(values["seed"]),
        "params": int(sum(np.prod(p.shape) for p in jax.tree.leaves(state.params))),
        "train_steps": num_chunks * config.steps_per_chunk, "train_seconds": train_seconds,
        "final_loss": losses[-1]["loss"], "losses": losses, "eval": results,
        "config": dataclasses.asdict(config),
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


@hydra.main(version_base="1.3", config_path="../configs/dt", config_name="dt")
def main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_dt(values, run_dir)
    print(f"run dir: {run_dir}")
    for split, r in summary["eval"].items():
        print(f"{split:5s} return {r['return_mean']:8.3f}  (data mean {r['data_return_mean']:.3f}, "
              f"data best {r['data_return_max_mean']:.3f})")


if __name__ == "__main__":
    main()
