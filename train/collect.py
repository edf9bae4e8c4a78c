"""Offline datasets from our own PPO agent: ``python train/collect.py preset=small dataset_dir=data/pr``.

Trains one task-conditioned PPO agent on the train tasks of ``env`` and writes the ``medium``,
``expert``, ``medium_expert`` and ``random`` datasets of the train and test tasks under
``<dataset_dir>/<split>/<quality>`` (``experiment.collect``). ``dataset_dir`` is a run directory like any
other: ``run.json``, checkpoints, TensorBoard and ``summary.json``; ``resume=true`` continues an
interrupted collection. The agent takes train/ppo.py's keys (``model=``, ``total_timesteps=``, ...);
``--help`` lists every key.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ssmrl.experiment.config import load, prepare


@hydra.main(version_base="1.3", config_path="../configs/collect", config_name="collect")
def main(cfg: DictConfig) -> None:
    run = load("collect", cfg)
    from ssmrl.experiment.collect import collect  # the runtime loads only for a config that passed
    from ssmrl.experiment.loop import run_main

    run_main(lambda: collect(run, run.dataset_dir, resume=run.resume))
    print(f"datasets written under {run.dataset_dir}")


if __name__ == "__main__":
    prepare("collect", "Offline datasets: python train/collect.py env=tasks/point_robot preset=small dataset_dir=DIR")
    main()
