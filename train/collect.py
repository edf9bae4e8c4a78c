"""Offline datasets from our own PPO agent: ``python train/collect.py preset=small dataset_dir=data/pr``.

One task-conditioned PPO agent (``envs.tasks.conditioned.TaskConditioned``: a train task drawn at every
reset, its goal appended to the observation) is trained on the train tasks of ``env``. A policy
snapshot is kept after every chunk of updates. ``expert`` is the final policy; ``medium`` is the
snapshot whose mean return is closest to ``random + medium_level * (expert - random)`` (random = the
untrained snapshot); ``medium_expert`` mixes, per task, ``medium_expert_fraction`` medium episodes
with expert ones; ``random`` is the untrained snapshot (a near-uniform Gaussian policy: behaviour
that covers the state space instead of heading for the goal, for world models that must predict
off the experts' paths). Each quality is written for the train and the test tasks with
``experiment.datasets.write_dataset`` under ``<dataset_dir>/<split>/<quality>``; ``collect_summary.json``
records the snapshot curve and the return statistics. Same config and seed -> same datasets. The agent
takes train/ppo.py's keys (``model=``, ``total_timesteps=``, ...); ``--help`` lists every key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import hydra
from omegaconf import DictConfig

from ssmrl.experiment.config import DATASETS, CollectRun, load, prepare


def collect(run: CollectRun, out_dir: str) -> dict:
    """Train the collection agent and write every dataset; returns the summary (also written)."""
    import jax
    import numpy as np

    from ssmrl.agents.dt.collection import make_collect
    from ssmrl.agents.ppo.config import validate
    from ssmrl.agents.ppo.train import build, make_chunk
    from ssmrl.envs.tasks import PREFIX, index_params, num_tasks, task_split
    from ssmrl.experiment.datasets import mix_episodes, write_dataset

    env_name = run.ppo.env_name
    config = validate(dataclasses.replace(run.ppo, env_name=PREFIX + env_name, eval_envs=1,
                                          env_options=(("split", "train"), ("split_seed", run.split_seed))))
    parts = build(config)
    train_tasks, test_tasks = task_split(env_name, run.split_seed)
    n_eval = run.eval_episodes
    episodes = run.episodes_per_task
    score = jax.jit(make_collect(parts, n_eval, deterministic=run.deterministic))
    gather = jax.jit(make_collect(parts, episodes, deterministic=run.deterministic))
    chunk = jax.jit(make_chunk(parts))

    key = jax.random.PRNGKey(run.seed)
    k_init, k_score, k_collect = jax.random.split(key, 3)
    state = parts.init(k_init)
    snapshots, curve = [], []
    t0 = time.time()

    def snapshot(updates):
        params = state.train_state.params
        ret = float(np.asarray(score(params, train_tasks, jax.random.fold_in(k_score, updates))["rewards"])
                    .sum(-1).mean())
        snapshots.append(jax.device_get(params))
        curve.append({"updates": updates, "env_steps": updates * config.steps_per_update, "return": ret})
        if run.progress:
            print(f"[collect] updates {updates:5d}  env steps {updates * config.steps_per_update:9d}  "
                  f"train-task return {ret:8.3f}  ({time.time() - t0:.0f}s)", flush=True)

    snapshot(0)
    for c in range(config.num_chunks):
        state, _ = chunk(state)
        snapshot((c + 1) * config.chunk_updates)

    returns = np.array([c["return"] for c in curve])
    random_return, expert_return = returns[0], returns[-1]
    target = random_return + run.medium_level * (expert_return - random_return)
    medium_index = int(np.argmin(np.abs(returns[:-1] - target))) if len(returns) > 1 else 0
    chosen = {"medium": medium_index, "expert": len(snapshots) - 1, "random": 0}

    policy_base = {"algorithm": "PPO", "env": PREFIX + env_name, "model": config.model,
                   "ppo_config": {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in vars(config).items()}}
    summary = {"env": env_name, "split_seed": run.split_seed, "seed": run.seed,
               "curve": curve, "random_return": float(random_return), "expert_return": float(expert_return),
               "medium_target": float(target), "medium_updates": curve[medium_index]["updates"], "datasets": {}}
    mix_rng = np.random.default_rng(run.seed)
    for split, tasks, salt in (("train", train_tasks, 0), ("test", test_tasks, 1)):
        data = {}
        for quality in chosen:
            k = jax.random.fold_in(jax.random.fold_in(k_collect, salt), chosen[quality])
            data[quality] = jax.device_get(gather(snapshots[chosen[quality]], tasks, k))
        n = num_tasks(tasks)
        per_task = {q: [{k: np.asarray(v[i]) for k, v in data[q].items()} for i in range(n)] for q in data}
        per_task["medium_expert"] = [mix_episodes(m, e, run.medium_expert_fraction, mix_rng)
                                     for m, e in zip(per_task["medium"], per_task["expert"])]
        descriptions = {
            "medium": f"PPO snapshot after {curve[medium_index]['updates']} updates "
                      f"(return {returns[medium_index]:.3f}; random {random_return:.3f}, expert {expert_return:.3f})",
            "expert": f"final PPO policy after {curve[-1]['updates']} updates (return {expert_return:.3f})",
            "medium_expert": f"per task {run.medium_expert_fraction:.0%} medium, rest expert episodes",
            "random": f"untrained PPO policy (return {random_return:.3f})",
        }
        for quality in DATASETS:
            directory = os.path.join(out_dir, split, quality)
            policy = dict(policy_base, description=descriptions[quality],
                          sampling="mean" if run.deterministic else "sampled",
                          updates=curve[chosen.get(quality, -1)]["updates"] if quality in chosen else None)
            card = write_dataset(directory, per_task[quality], env=env_name, task_params=[
                index_params(tasks, i) for i in range(n)], split=split, split_seed=run.split_seed,
                task_indices=list(range(n)), policy=policy, quality=quality, seed=run.seed)
            summary["datasets"][f"{split}/{quality}"] = card["return_stats"]
            if run.progress:
                s = card["return_stats"]
                print(f"[collect] {split:5s} {quality:13s} return {s['return_mean']:8.3f} +- {s['return_std']:.3f} "
                      f"(min {s['return_min']:.3f}, max {s['return_max']:.3f})", flush=True)
    summary["wall_time_s"] = time.time() - t0
    with open(os.path.join(out_dir, "collect_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


@hydra.main(version_base="1.3", config_path="../configs/collect", config_name="collect")
def main(cfg: DictConfig) -> None:
    run = load("collect", cfg)
    os.makedirs(run.dataset_dir, exist_ok=True)
    collect(run, run.dataset_dir)
    print(f"datasets written under {run.dataset_dir}")


if __name__ == "__main__":
    prepare("collect", "Offline datasets: python train/collect.py env=tasks/point_robot preset=small dataset_dir=DIR")
    main()
