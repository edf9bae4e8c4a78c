"""Evaluate a run: ``python train/evaluate.py run=<run dir> episodes=256``.

Dispatches on the run's ``kind`` (``run.json``) and writes ``eval.json`` (and ``eval.png``) into the
run directory. World-model runs: the returns of the episodes the policy finishes. PPO runs
(train/ppo.py): per split, the mean return per trial index with a 95% confidence interval. Offline runs (train/dt.py,
train/meta_dt.py): per split (train tasks, held-out test tasks) and mode (``dt``; ``zero_shot`` and
``few_shot`` for Meta-DT; ``prompted`` for Prompt-DT), the mean return of every task, ``episodes``
spread over the split's tasks. ``video=true`` (PPO runs on image-observation envs: MinAtar, Atari)
adds ``episode.gif`` (and ``episode.mp4`` when ffmpeg is installed): one episode of the first seed.
"""

from __future__ import annotations

import json
import os

import hydra
import numpy as np
from omegaconf import DictConfig

from ssmrl.experiment.config import load, prepare


@hydra.main(version_base="1.3", config_path="../configs/evaluate", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run = load("evaluate", cfg)
    from ssmrl.experiment.evaluation import evaluate_run  # the runtime loads only for a config that passed
    from ssmrl.experiment.loop import run_main

    report = run_main(lambda: evaluate_run(run.run, episodes=run.episodes, deterministic=run.deterministic,
                                           seed=run.seed, video=run.video))
    for split, stats in report["splits"].items():
        if report.get("kind") == "world_model":
            print(f"{split:>5}: return {stats['return_mean']} over {stats['episodes']} episodes")
            continue
        if "kind" in report:  # offline: {mode: stats}
            for mode, s in stats.items():
                print(f"{split:>5} {mode:>9}: {s['return_mean']:.3f}±{s['return_ci95_over_tasks']:.3f} over tasks "
                      f"(target {np.mean(s['targets']):.3f})")
            continue
        curve = ", ".join(f"{m:.3f}±{c:.3f}" for m, c in zip(stats["trial_mean"], stats["trial_ci95"]))
        print(f"{split:>16}: {curve}")
    print(json.dumps({"eval": os.path.join(run.run, "eval.json"), **({"video": report["video"]} if "video" in report
                                                                       else {})}))


if __name__ == "__main__":
    prepare("evaluate", "Evaluate a run: python train/evaluate.py run=<run dir> episodes=256")
    main()
