"""Offline datasets from our own PPO agent, as a run of the one loop (``kind: collect``).

One task-conditioned PPO agent (``envs.tasks.conditioned.TaskConditioned``: a train task drawn at every
reset, its goal appended to the observation) is trained on the train tasks of ``env``. A policy
snapshot is kept after every chunk of updates, inside the checkpointed state, so an interrupted
collection resumes exactly. ``expert`` is the final policy; ``medium`` is the snapshot whose mean
return is closest to ``random + medium_level * (expert - random)`` (random = the untrained snapshot);
``medium_expert`` mixes, per task, ``medium_expert_fraction`` medium episodes with expert ones;
``random`` is the untrained snapshot (a near-uniform Gaussian policy: behaviour that covers the state
space instead of heading for the goal, for world models that must predict off the experts' paths).
Each quality is written for the train and the test tasks with ``experiment.datasets.write_dataset``
under ``<run dir>/<split>/<quality>``; ``summary.json`` records the snapshot curve and the return
statistics. Same config and seed -> same datasets.
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial
from typing import Any

import jax
import numpy as np
from flax import struct

from ssmrl.agents.config import to_fields
from ssmrl.agents.dt.collection import make_collect
from ssmrl.agents.ppo.config import validate
from ssmrl.agents.ppo.train import PPOParts, RunnerState, build
from ssmrl.envs.tasks import PREFIX, index_params, num_tasks, task_split
from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.config import DATASETS, CollectRun
from ssmrl.experiment.datasets import mix_episodes, write_dataset
from ssmrl.experiment.logger import make_writer
from ssmrl.experiment.loop import LoopSpec, run_loop
from ssmrl.experiment.ppo import seeds_chunk
from ssmrl.experiment.progress import Progress
from ssmrl.experiment.run_dir import RunDir


@struct.dataclass
class CollectState:
    runner: RunnerState  # with a leading [1] seed axis
    snapshots: Any  # the policy's params after chunk c at [c] (c = 0: untrained); [num_chunks + 1, ...]
    scores: jax.Array  # [num_chunks + 1] mean train-task return of each snapshot
    chunks: jax.Array  # chunks done


def collect(run: CollectRun, run_dir: str, resume: bool = False, stop_after: int | None = None) -> dict:
    """Train the collection agent and write every dataset under ``run_dir``; returns the summary (also written).

    ``run``: the checked ``train/collect.py`` config; ``stop_after`` ends training after that many chunks
    (as a crash would: no datasets); ``resume`` continues from the newest checkpoint."""
    env_name = run.ppo.env_name
    config = validate(dataclasses.replace(run.ppo, env_name=PREFIX + env_name, eval_envs=1,
                                          env_options=(("split", "train"), ("split_seed", run.split_seed))))
    parts = build(config)
    train_tasks, test_tasks = task_split(env_name, run.split_seed)
    fields = to_fields(run)
    with RunDir(run_dir, "collect", fields, resume, defaults=to_fields(CollectRun())) as directory:
        writer = make_writer("tensorboard", directory.path, fields)
        checkpoints = Checkpoints(os.path.join(directory.path, "checkpoints"))
        bar = Progress(config.num_updates * config.steps_per_update, config.steps_per_update, enabled=run.progress)
        try:
            state, result = _train(run, parts, train_tasks, directory, writer, checkpoints, bar, stop_after)
        finally:
            checkpoints.close()
            bar.close()
            writer.close()
        chunks = int(state.chunks)
        scores = np.asarray(state.scores, np.float64)[:chunks + 1]
        curve = [{"updates": c * config.chunk_updates, "env_steps": c * config.chunk_updates * config.steps_per_update,
                  "return": float(scores[c])} for c in range(chunks + 1)]
        summary = {"kind": "collect", "env": env_name, "split_seed": run.split_seed, "seed": run.seed, "curve": curve,
                   "finished": result.stopped == "finished", "stopped": result.stopped,
                   "wall_time_s": result.wall_time_s}
        if result.stopped != "finished":
            return directory.write_summary(summary)
        snapshots = [jax.tree.map(lambda x, c=c: np.asarray(x[c]), state.snapshots) for c in range(chunks + 1)]
        summary.update(_write_datasets(run, parts, snapshots, curve, train_tasks, test_tasks, directory.path))
        return directory.write_summary(summary)


def _train(run: CollectRun, parts: PPOParts, train_tasks: Any, directory: RunDir, writer: Any,
           checkpoints: Checkpoints, bar: Progress, stop_after: int | None) -> tuple[CollectState, Any]:
    """PPO on the train tasks through the one loop, scoring and keeping a snapshot after every chunk."""
    config = parts.config
    score = make_collect(parts, run.eval_episodes, deterministic=run.deterministic)
    # one seed through PPO's seed-vmapped chunk: the same progress bar, moved after every update
    train = seeds_chunk(parts, bar.on_update if run.progress else None)
    first_seed = partial(jax.tree.map, lambda p: p[0])
    k_init, k_score, _ = jax.random.split(jax.random.PRNGKey(run.seed), 3)

    def mean_return(params, updates):
        return score(params, train_tasks, jax.random.fold_in(k_score, updates))["rewards"].sum(-1).mean()

    @jax.jit
    def start(key) -> CollectState:
        runner = jax.vmap(parts.init)(key[None])
        params = first_seed(runner.train_state.params)
        snapshots = jax.tree.map(lambda p: jax.numpy.zeros((config.num_chunks + 1,) + p.shape, p.dtype).at[0].set(p),
                                 params)
        scores = jax.numpy.full((config.num_chunks + 1,), jax.numpy.nan).at[0].set(mean_return(params, 0))
        return CollectState(runner, snapshots, scores, jax.numpy.zeros((), jax.numpy.int32))

    @jax.jit
    def chunk(state: CollectState) -> tuple[CollectState, dict]:
        runner, metrics = train(state.runner)
        c = state.chunks + 1
        params = first_seed(runner.train_state.params)
        snapshots = jax.tree.map(lambda s, p: s.at[c].set(p), state.snapshots, params)
        scores = state.scores.at[c].set(mean_return(params, c * config.chunk_updates))
        return CollectState(runner, snapshots, scores, c), metrics

    def log_snapshot(state: CollectState, index: int) -> None:
        writer.add_scalar("collect/snapshot_return", float(state.scores[index + 1]),
                          (index + 1) * config.chunk_updates * config.steps_per_update)

    spec = LoopSpec(config.num_chunks, config.steps_per_update, headline="episode_return", losses=("loss",),
                    sparse=("episode_return",))
    result = run_loop(chunk, start(k_init), spec, checkpoints, writer=writer, resume=directory.resuming,
                      stop_after=stop_after, progress=bar, params=lambda s: s.runner.train_state.params, run=directory,
                      after_chunk=log_snapshot)
    return result.state, result


def _write_datasets(run: CollectRun, parts: PPOParts, snapshots: list, curve: list[dict], train_tasks: Any,
                    test_tasks: Any, out_dir: str) -> dict:
    """Pick the medium snapshot, roll out every quality on both splits and write the datasets."""
    config, env_name = parts.config, run.ppo.env_name
    gather = jax.jit(make_collect(parts, run.episodes_per_task, deterministic=run.deterministic))
    _, _, k_collect = jax.random.split(jax.random.PRNGKey(run.seed), 3)
    returns = np.array([c["return"] for c in curve])
    random_return, expert_return = returns[0], returns[-1]
    target = random_return + run.medium_level * (expert_return - random_return)
    medium_index = int(np.argmin(np.abs(returns[:-1] - target))) if len(returns) > 1 else 0
    chosen = {"medium": medium_index, "expert": len(snapshots) - 1, "random": 0}
    policy_base = {"algorithm": "PPO", "env": PREFIX + env_name, "model": config.model,
                   "ppo_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(config).items()}}
    out = {"random_return": float(random_return), "expert_return": float(expert_return),
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
            policy = dict(policy_base, description=descriptions[quality],
                          sampling="mean" if run.deterministic else "sampled",
                          updates=curve[chosen[quality]]["updates"] if quality in chosen else None)
            card = write_dataset(os.path.join(out_dir, split, quality), per_task[quality], env=env_name,
                                 task_params=[index_params(tasks, i) for i in range(n)], split=split,
                                 split_seed=run.split_seed, task_indices=list(range(n)), policy=policy,
                                 quality=quality, seed=run.seed)
            out["datasets"][f"{split}/{quality}"] = card["return_stats"]
            if run.progress:
                s = card["return_stats"]
                print(f"[collect] {split:5s} {quality:13s} return {s['return_mean']:8.3f} +- {s['return_std']:.3f} "
                      f"(min {s['return_min']:.3f}, max {s['return_max']:.3f})", flush=True)
    return out
