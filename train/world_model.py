"""World-model agents on Atari100k: ``python train/world_model.py env.game=Pong model=drama preset=small``.

Keys: ``env.game``, ``model`` (drama | s4wm | rssm; ``model.layer=<ssm registry name>`` for S4WM blocks of that
layer),
``preset`` (small | atari100k), ``total_steps``, ``sampler`` (uniform | dfs), ``seed``, ``resume``,
``hydra.run.dir``; every ``WorldModelConfig`` field can be overridden at the top level.
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.world_model.config import WorldModelConfig, from_mapping, validate  # noqa: E402
from experiment.world_model import run_world_model  # noqa: E402

RUN_KEYS = ("seed", "resume", "progress")


def to_config(cfg: DictConfig) -> WorldModelConfig:
    """Flatten the Hydra config (``env.*``, ``model.*``, top-level keys) into a ``WorldModelConfig``."""
    values = OmegaConf.to_container(cfg, resolve=True)
    env, model = values.pop("env"), values.pop("model")
    for key in RUN_KEYS:
        values.pop(key, None)
    bad_env = sorted(set(env) - {"game", "num_envs"})
    if bad_env:
        raise ValueError(f"unknown env key(s) {bad_env}; valid: ['game', 'num_envs']")
    bad_model = sorted(set(model) - {"name", "layer", "state_size"})
    if bad_model:
        raise ValueError(f"unknown model key(s) {bad_model}; valid: ['layer', 'name', 'state_size']")
    values.update(game=env["game"], num_envs=env.get("num_envs", 1), model=model["name"],
                  state_size=model.get("state_size", 16))
    if "layer" in model:
        values["s4wm_layer"] = model["layer"]
    return from_mapping(values)


@hydra.main(version_base="1.3", config_path="../configs/world_model", config_name="world_model")
def main(cfg: DictConfig) -> None:
    config = validate(to_config(cfg))
    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_world_model(config, run_dir, seed=cfg.seed, resume=cfg.resume, progress=cfg.progress)
    print(f"run dir: {run_dir}")
    hns = summary["hns"]
    print(f"{config.model} on {config.game}: score {summary['score']} (HNS {hns if hns is None else round(hns, 3)}) "
          f"after {summary['env_steps']:,} env steps, {summary['params_world_model']:,} world-model params")


if __name__ == "__main__":
    main()
