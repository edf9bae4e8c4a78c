"""World-model agents on any registered env with discrete actions, named as train/ppo.py names them:

    python train/world_model.py env=popgym env.name=RepeatPreviousEasy model=s4wm preset=popgym
    python train/world_model.py env=gymnax env.name=Breakout-MinAtar model=drama preset=small
    python train/world_model.py env=atari env.game=Pong model=drama preset=small

Keys: ``env.name`` (``env.game`` for Atari), ``env.options.*``,
``model`` (drama | s4wm | rssm; ``model.layer=<ssm registry name>`` for S4WM blocks of that layer),
``preset`` (auto | small | full = atari100k | popgym), ``total_steps``, ``sampler`` (uniform | dfs), ``seed``,
``resume``, ``hydra.run.dir``; every ``WorldModelConfig`` field can be overridden at the top level.
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agents.world_model.config import WorldModelConfig, from_mapping, validate  # noqa: E402
from experiment import presets  # noqa: E402
from experiment.world_model import run_world_model  # noqa: E402

RUN_KEYS = ("seed", "resume", "progress")
MODEL_KEYS = ("name", "layer", "state_size")


def to_config(cfg: DictConfig) -> WorldModelConfig:
    """Flatten the Hydra config (``env.*``, ``model.*``, top-level keys) into a ``WorldModelConfig``.

    Every env key but ``name`` (and Atari's ``game``, which only forms the name) is an option of the
    env's constructor, as in train/ppo.py."""
    values = OmegaConf.to_container(cfg, resolve=True)
    env, model = values.pop("env"), values.pop("model")
    for key in RUN_KEYS:
        values.pop(key, None)
    bad_model = sorted(set(model) - set(MODEL_KEYS))
    if bad_model:
        raise ValueError(f"unknown model key(s) {bad_model}; valid: {sorted(MODEL_KEYS)}")
    env_options = {k: v for k, v in env.items() if k not in ("name", "game", "options")}
    env_options.update(env.get("options") or {})
    values.update(env_name=env["name"], env_options=env_options, model=model["name"],
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
    hns = "" if summary["hns"] is None else f" (HNS {summary['hns']:.3f})"
    print(f"{config.model} on {config.env_name}: score {summary['score']}{hns} after {summary['env_steps']:,} env "
          f"steps, {summary['params_world_model']:,} world-model params")


if __name__ == "__main__":
    presets.apply(os.path.join(ROOT, "configs/world_model/preset"), {"full": "atari100k"})
    main()
