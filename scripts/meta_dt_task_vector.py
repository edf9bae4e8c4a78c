"""Does a Meta-DT run's policy use its task vector z? ``python scripts/meta_dt_task_vector.py RUN_DIR``.

Rolls the run's newest checkpoint out once in every train task, with an empty prompt (zero-shot), and
five sources of z_t: the agent's own context (the normal zero-shot rollout); the z the world model gave
the task's first dataset episode at the same step (the z the DT was trained with); that episode's
last-step z, held fixed; the same from *another* task; and the empty-context z, held fixed. If the
first two are far apart, z from the agent's own behaviour is off-distribution; if the right task's z
and another task's z give close returns, the policy barely reads z.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.config import from_fields
from ssmrl.agents.meta_dt.evaluate import make_rollout
from ssmrl.agents.meta_dt.prompt import empty_prompt
from ssmrl.experiment import compile_cache
from ssmrl.experiment.checkpoint import restore_latest
from ssmrl.experiment.config import MetaDTRun
from ssmrl.experiment.meta_dt import setup_meta
from ssmrl.experiment.offline import split_tasks
from ssmrl.experiment.run_dir import read_run


def main(run_dir: str) -> None:
    run = from_fields(MetaDTRun, read_run(run_dir)["config"])
    if run.meta.method != "meta_dt":
        raise ValueError(f"{run_dir} is not a Meta-DT run (method={run.meta.method!r})")
    ms = setup_meta(run)
    _, wm = restore_latest(os.path.join(run_dir, "checkpoints", "world_model"), ms.world_model.init(jax.random.key(0)))
    _, dt = restore_latest(os.path.join(run_dir, "checkpoints", "dt"), ms.parts.init(jax.random.key(0)))
    z_data, _ = ms.world_model.annotate(wm.params, ms.world_model_data)  # [episodes, T, Z]
    z_task = z_data[::ms.offline.episodes_per_task]  # every train task's first episode
    tasks, targets, _ = split_tasks(ms.offline, "train")
    n, horizon = z_task.shape[0], z_task.shape[1]
    obs_dim, act_dim = ms.data.state_mean.shape[0], ms.parts.model.act_dim
    rollout = jax.jit(make_rollout(ms.parts, ms.world_model, ms.offline.env, horizon, ms.reward_scale))
    fixed = lambda z: jnp.repeat(z[:, None], horizon, axis=1)  # noqa: E731
    sources = {
        "own context (zero-shot)": None,
        "the task's dataset episode, step by step": z_task,
        "the task's dataset episode (last step), fixed": fixed(z_task[:, -1]),
        "another task's dataset episode (last step), fixed": fixed(jnp.roll(z_task[:, -1], 1, axis=0)),
        "empty context, fixed": fixed(z_task[:, 0]),
    }
    print(f"train tasks: {n}, data best return (mean over tasks) {float(np.mean(targets)):.2f}")
    for name, z in sources.items():
        out = rollout(dt.params, wm.params, tasks, jnp.asarray(targets), empty_prompt(n, ms.parts.config.prompt_len,
                      obs_dim, act_dim), jnp.zeros((n,), bool), ms.data.state_mean, ms.data.state_std,
                      jax.random.key(1), z)
        print(f"z from {name:52s} return {float(out.returns.mean()):8.2f}")


if __name__ == "__main__":
    compile_cache.enable()  # a rerun (on another checkpoint, with other flags) loads what it compiled before
    main(sys.argv[1])
