"""Decision Transformer on our own datasets:
``python train/dt.py env=tasks/point_robot dataset=expert model=transformer preset=small dataset_dir=DIR``.

Trains on ``DIR/train/<dataset>`` (written by ``train/collect.py``), then rolls the policy out on the
train tasks and on the held-out test tasks (task params from ``DIR/test/<dataset>``) with the target
return = the best return in that task's data (or ``target_return``), and writes ``summary.json``
(returns per split and task, the data's returns for reference, the loss curve), ``run.json`` and orbax
checkpoints into the run dir (``experiment.dt``). ``resume=true hydra.run.dir=<run>`` continues an
interrupted run; ``python train/evaluate.py run=<run>`` evaluates it again; ``--help`` lists every key.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssmrl.experiment.config import load, prepare


@hydra.main(version_base="1.3", config_path="../configs/dt", config_name="dt")
def main(cfg: DictConfig) -> None:
    run = load("dt", cfg)
    from ssmrl.experiment.dt import run_dt  # the runtime loads only for a config that passed
    from ssmrl.experiment.loop import run_main

    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_main(lambda: run_dt(run, run_dir, resume=run.resume))
    print(f"run dir: {run_dir}")
    for split, r in summary["eval"].items():
        print(f"{split:5s} return {r['return_mean']:8.3f}  (data mean {r['data_return_mean']:.3f}, "
              f"data best {r['data_return_max_mean']:.3f})")


if __name__ == "__main__":
    prepare("dt", "Decision Transformer: python train/dt.py env=tasks/point_robot dataset=expert model=s5 "
                  "dataset_dir=DIR")
    main()
