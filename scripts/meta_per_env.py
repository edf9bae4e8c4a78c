"""Per-base-env in-context curves of a meta-RL PPO run: ``python scripts/meta_per_env.py RUN_DIR [EPISODES]``.

``train/evaluate.py`` averages the trial returns over the whole train pool; this evaluates the
newest checkpoint on each train-pool member alone (same projections), with the sampled and with the
deterministic policy, and prints the mean return of every trial with its 95% half-width.
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import numpy as np

from ssmrl.agents.ppo.evaluate import make_evaluate
from ssmrl.agents.ppo.train import build
from ssmrl.experiment import compile_cache
from ssmrl.experiment.evaluation import load_run, restore_params
from ssmrl.experiment.run_dir import read_run


def main(run_dir: str, episodes: int = 256) -> None:
    config, seeds = load_run(read_run(run_dir))
    if config.env_name != "meta":
        raise ValueError(f"{run_dir} is a run on env {config.env_name!r}; this script needs env=meta")
    _, params = restore_params(run_dir, config, seeds)
    options = dict(config.env_options)
    for name in options["train"]:
        single = dataclasses.replace(config, env_options=tuple(sorted({**options, "train": (name,)}.items())))
        for deterministic in (False, True):
            evaluate = jax.jit(jax.vmap(make_evaluate(build(single), episodes, deterministic)))
            returns = np.asarray(evaluate(params, jax.random.split(jax.random.PRNGKey(1), seeds)))
            returns = returns.reshape(-1, returns.shape[-1])
            half = 1.96 * returns.std(0, ddof=1) / np.sqrt(len(returns))
            curve = ", ".join(f"{m:.3f} ± {h:.3f}" for m, h in zip(returns.mean(0), half))
            print(f"{name:>16} {'mode' if deterministic else 'sampled':>7}: {curve}")


if __name__ == "__main__":
    compile_cache.enable()  # a rerun (on another checkpoint, with other flags) loads what it compiled before
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 256)
