"""World-model agents on any registered env with discrete actions, named as train/ppo.py names them:

    python train/world_model.py env=popgym env.name=RepeatPreviousEasy model=s4wm preset=popgym
    python train/world_model.py env=gymnax env.name=Breakout-MinAtar model=drama preset=small
    python train/world_model.py env=atari env.name=atari/Pong model=drama preset=small

Keys: ``env.name``, ``env.options.*``, ``model`` (drama | s4wm | rssm; ``model.layer=<ssm registry
name>`` for S4WM blocks of that layer), ``preset`` (auto | small | full = atari100k | popgym),
``total_steps``, ``sampler`` (uniform | dfs), ``seed``, ``resume``, ``hydra.run.dir``; every
``WorldModelConfig`` field can be overridden at the top level (``--help`` lists them).
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssmrl.experiment.config import load, prepare


@hydra.main(version_base="1.3", config_path="../configs/world_model", config_name="world_model")
def main(cfg: DictConfig) -> None:
    run = load("world_model", cfg)
    from ssmrl.experiment.loop import run_main
    from ssmrl.experiment.world_model import run_world_model  # the runtime loads only for a config that passed

    config = run.agent
    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_main(lambda: run_world_model(config, run_dir, seed=run.seed, resume=run.resume,
                                               progress=run.progress))
    print(f"run dir: {run_dir}")
    hns = "" if summary["hns"] is None else f" (HNS {summary['hns']:.3f})"
    print(f"{config.model} on {config.env_name}: score {summary['score']}{hns} after {summary['env_steps']:,} env "
          f"steps, {summary['params_world_model']:,} world-model params")


if __name__ == "__main__":
    prepare("world_model", "World-model agents: python train/world_model.py env=popgym model=s4wm preset=popgym",
            {"full": "atari100k"})
    main()
