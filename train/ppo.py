"""PPO with a sequence-model memory: ``python train/ppo.py env=popgym model=s5 preset=small``."""

from __future__ import annotations

import os

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssmrl.agents.ppo.config import from_hydra, validate
from ssmrl.experiment import presets
from ssmrl.experiment.loop import run_main
from ssmrl.experiment.ppo import run_ppo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@hydra.main(version_base="1.3", config_path="../configs", config_name="ppo")
def main(cfg: DictConfig) -> None:
    config = validate(from_hydra(cfg))
    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_main(lambda: run_ppo(config, run_dir, seeds=cfg.seeds, seed=cfg.seed, resume=cfg.resume,
                                       progress=cfg.progress, deterministic_eval=cfg.deterministic_eval,
                                       logger=cfg.logger))
    print(f"run dir: {run_dir}")
    print(f"final return per seed: {[round(r, 3) for r in summary['final_return']]} "
          f"after {summary['env_steps']:,} env steps ({summary['params']:,} params)")


if __name__ == "__main__":
    presets.apply(os.path.join(ROOT, "configs/preset"), {"paper": "full"})
    main()
