"""Offline datasets from our own PPO agent: ``python train/collect.py preset=small out_dir=data/pr``.

One task-conditioned PPO agent (``envs.tasks.conditioned.TaskConditioned``: a train task drawn at every
reset, its goal appended to the observation) is trained on the train tasks of ``env``. A policy
snapshot is kept after every chunk of updates. ``expert`` is the final policy; ``medium`` is the
snapshot whose mean return is closest to ``random + medium_level * (expert - random)`` (random = the
untrained snapshot); ``medium_expert`` mixes, per task, ``medium_expert_fraction`` medium episodes
with expert ones; ``random`` is the untrained snapshot (a near-uniform Gaussian policy: behaviour
that covers the state space instead of heading for the goal, for world models that must predict
off the experts' paths). Each quality is written for the train and the test tasks with
``experiment.datasets.write_dataset`` under ``<out_dir>/<split>/<quality>``; ``collect_summary.json``
records the snapshot curve and the return statistics. Same config and seed -> same datasets.
"""

from __future__ import annotations

import json
import os
import time

import hydra
from omegaconf import DictConfig, OmegaConf

from ssmrl.experiment import presets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

QUALITIES = ("medium", "expert", "medium_expert", "random")


def collect(values: dict, out_dir: str) -> dict:
    """Train the collection agent and write every dataset; returns the summary (also written)."""
    import jax
    import numpy as np

    from ssmrl.agents.dt.collection import make_collect
    from ssmrl.agents.ppo.config import from_mapping, validate
    from ssmrl.agents.ppo.train import build, make_chunk
    from ssmrl.envs.tasks import PREFIX, index_params, num_tasks, task_split
    from ssmrl.experiment.datasets import mix_episodes, write_dataset

    env_name = values["env"]
    ppo_values = dict(values["ppo"])
    ppo_values.update(env_name=PREFIX + env_name,
                      env_options={"split": "train", "split_seed": int(values["split_seed"])}, eval_envs=1)
    config = validate(from_mapping(ppo_values))
    parts = build(config)
    train_tasks, test_tasks = task_split(env_name, int(values["split_seed"]))
    n_eval = int(values["eval_episodes"])
    episodes = int(values["episodes_per_task"])
    score = jax.jit(make_collect(parts, n_eval, deterministic=bool(values["deterministic"])))
    gather = jax.jit(make_collect(parts, episodes, deterministic=bool(values["deterministic"])))
    chunk = jax.jit(make_chunk(parts))

    key = jax.random.PRNGKey(int(values["seed"]))
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
        if values.get("progress", True):
            print(f"[collect] updates {updates:5d}  env steps {updates * config.steps_per_update:9d}  "
                  f"train-task return {ret:8.3f}  ({time.time() - t0:.0f}s)", flush=True)

    snapshot(0)
    for c in range(config.num_chunks):
        state, _ = chunk(state)
        snapshot((c + 1) * config.chunk_updates)

    returns = np.array([c["return"] for c in curve])
    random_return, expert_return = returns[0], returns[-1]
    target = random_return + float(values["medium_level"]) * (expert_return - random_return)
    medium_index = int(np.argmin(np.abs(returns[:-1] - target))) if len(returns) > 1 else 0
    chosen = {"medium": medium_index, "expert": len(snapshots) - 1, "random": 0}

    policy_base = {"algorithm": "PPO", "env": PREFIX + env_name, "model": config.model,
                   "ppo_config": {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in vars(config).items()}}
    summary = {"env": env_name, "split_seed": int(values["split_seed"]), "seed": int(values["seed"]),
               "curve": curve, "random_return": float(random_return), "expert_return": float(expert_return),
               "medium_target": float(target), "medium_updates": curve[medium_index]["updates"], "datasets": {}}
    mix_rng = np.random.default_rng(int(values["seed"]))
    for split, tasks, salt in (("train", train_tasks, 0), ("test", test_tasks, 1)):
        data = {}
        for quality in chosen:
            k = jax.random.fold_in(jax.random.fold_in(k_collect, salt), chosen[quality])
            data[quality] = jax.device_get(gather(snapshots[chosen[quality]], tasks, k))
        n = num_tasks(tasks)
        per_task = {q: [{k: np.asarray(v[i]) for k, v in data[q].items()} for i in range(n)] for q in data}
        per_task["medium_expert"] = [mix_episodes(m, e, float(values["medium_expert_fraction"]), mix_rng)
                                     for m, e in zip(per_task["medium"], per_task["expert"])]
        descriptions = {
            "medium": f"PPO snapshot after {curve[medium_index]['updates']} updates "
                      f"(return {returns[medium_index]:.3f}; random {random_return:.3f}, expert {expert_return:.3f})",
            "expert": f"final PPO policy after {curve[-1]['updates']} updates (return {expert_return:.3f})",
            "medium_expert": f"per task {values['medium_expert_fraction']:.0%} medium, rest expert episodes",
            "random": f"untrained PPO policy (return {random_return:.3f})",
        }
        for quality in QUALITIES:
            directory = os.path.join(out_dir, split, quality)
            policy = dict(policy_base, description=descriptions[quality],
                          sampling="mean" if values["deterministic"] else "sampled",
                          updates=curve[chosen.get(quality, -1)]["updates"] if quality in chosen else None)
            card = write_dataset(directory, per_task[quality], env=env_name, task_params=[
                index_params(tasks, i) for i in range(n)], split=split, split_seed=int(values["split_seed"]),
                task_indices=list(range(n)), policy=policy, quality=quality, seed=int(values["seed"]))
            summary["datasets"][f"{split}/{quality}"] = card["return_stats"]
            if values.get("progress", True):
                s = card["return_stats"]
                print(f"[collect] {split:5s} {quality:13s} return {s['return_mean']:8.3f} +- {s['return_std']:.3f} "
                      f"(min {s['return_min']:.3f}, max {s['return_max']:.3f})", flush=True)
    summary["wall_time_s"] = time.time() - t0
    with open(os.path.join(out_dir, "collect_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


@hydra.main(version_base="1.3", config_path="../configs/collect", config_name="collect")
def main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    os.makedirs(values["out_dir"], exist_ok=True)
    collect(values, values["out_dir"])
    print(f"datasets written under {values['out_dir']}")


if __name__ == "__main__":
    presets.apply(os.path.join(ROOT, "configs/collect/preset"))
    main()
