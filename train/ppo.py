"""PPO with a sequence-model memory: ``python train/ppo.py env=popgym model=s5 preset=small``.

``python train/ppo.py --help`` lists the groups (``env``, ``model``, ``preset``) and every key.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssmrl.experiment.config import load, prepare


@hydra.main(version_base="1.3", config_path="../configs/ppo", config_name="ppo")
def main(cfg: DictConfig) -> None:
    run = load("ppo", cfg)
    from ssmrl.experiment.loop import run_main  # the runtime loads only for a config that passed
    from ssmrl.experiment.ppo import run_ppo

    config = run.ppo
    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_main(lambda: run_ppo(config, run_dir, seeds=run.seeds, seed=run.seed, resume=run.resume,
                                       progress=run.progress, deterministic_eval=run.deterministic_eval,
                                       logger=run.logger))
    print(f"run dir: {run_dir}")
    print(f"final return per seed: {[round(r, 3) for r in summary['final_return']]} "
          f"after {summary['env_steps']:,} env steps ({summary['params']:,} params)")


if __name__ == "__main__":
    prepare("ppo", __doc__.splitlines()[0], {"paper": "full"})
    main()
