"""Meta-DT or Prompt-DT on our own datasets:
``python train/meta_dt.py env=tasks/point_robot dataset=expert model=s5 preset=small dataset_dir=DIR``
(``method=prompt_dt`` for Prompt-DT).

Writes ``run.json``, orbax checkpoints, TensorBoard logs and ``summary.json`` (train and held-out task
returns: zero-shot and few-shot for Meta-DT, prompted for Prompt-DT) into the run dir
(``experiment.meta_dt``). ``resume=true hydra.run.dir=<run>`` continues an interrupted run;
``python train/evaluate.py run=<run>`` evaluates it again; ``--help`` lists every key.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssmrl.experiment.config import load, prepare


@hydra.main(version_base="1.3", config_path="../configs/meta_dt", config_name="meta_dt")
def main(cfg: DictConfig) -> None:
    run = load("meta_dt", cfg)
    from ssmrl.experiment.loop import run_main
    from ssmrl.experiment.meta_dt import run_meta_dt  # the runtime loads only for a config that passed

    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_main(lambda: run_meta_dt(run, run_dir, resume=run.resume))
    print(f"run dir: {run_dir}")
    for split, modes in summary["eval"].items():
        for mode, r in modes.items():
            print(f"{split:5s} {mode:9s} return {r['return_mean']:8.3f}  (data mean {r['data_return_mean']:.3f}, "
                  f"data best {r['data_return_max_mean']:.3f})")


if __name__ == "__main__":
    prepare("meta_dt", "Meta-DT / Prompt-DT: python train/meta_dt.py [method=prompt_dt] env=tasks/point_robot "
                       "dataset=expert model=s5 dataset_dir=DIR")
    main()
