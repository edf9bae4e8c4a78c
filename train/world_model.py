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

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssmrl.agents.world_model.config import from_hydra, validate
from ssmrl.experiment import presets
from ssmrl.experiment.loop import run_main
from ssmrl.experiment.world_model import run_world_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@hydra.main(version_base="1.3", config_path="../configs/world_model", config_name="world_model")
def main(cfg: DictConfig) -> None:
    config = validate(from_hydra(cfg))
    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_main(lambda: run_world_model(config, run_dir, seed=cfg.seed, resume=cfg.resume,
                                               progress=cfg.progress))
    print(f"run dir: {run_dir}")
    hns = "" if summary["hns"] is None else f" (HNS {summary['hns']:.3f})"
    print(f"{config.model} on {config.env_name}: score {summary['score']}{hns} after {summary['env_steps']:,} env "
          f"steps, {summary['params_world_model']:,} world-model params")


if __name__ == "__main__":
    presets.apply(os.path.join(ROOT, "configs/world_model/preset"), {"full": "atari100k"})
    main()
