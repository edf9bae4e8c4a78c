"""Offline datasets from our own PPO agent: ``python train/collect.py preset=small out_dir=data/pr``.

Trains one task-conditioned PPO agent on the train tasks of ``env`` and writes the ``medium``,
``expert``, ``medium_expert`` and ``random`` datasets of the train and test tasks under
``<out_dir>/<split>/<quality>`` (``experiment.collect``). ``out_dir`` is a run directory like any other:
``run.json``, checkpoints, TensorBoard and ``summary.json``; ``resume=true`` continues an interrupted
collection.
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig, OmegaConf

from ssmrl.experiment import presets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@hydra.main(version_base="1.3", config_path="../configs/collect", config_name="collect")
def main(cfg: DictConfig) -> None:
    from ssmrl.experiment.collect import collect
    from ssmrl.experiment.loop import run_main

    values = OmegaConf.to_container(cfg, resolve=True)
    run_main(lambda: collect(values, values["out_dir"], resume=bool(values.get("resume", False))))
    print(f"datasets written under {values['out_dir']}")


if __name__ == "__main__":
    presets.apply(os.path.join(ROOT, "configs/collect/preset"))
    main()
