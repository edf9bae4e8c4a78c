"""Evaluate a run: ``python train/evaluate.py run=<run dir> episodes=256``.

Writes ``eval.json`` (per split: mean return per trial index with a 95% confidence interval) and
``eval.png`` into the run directory.
"""

from __future__ import annotations

import json
import os
import sys

import hydra
from omegaconf import DictConfig

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiment.evaluation import evaluate_run  # noqa: E402


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    report = evaluate_run(cfg.run, episodes=cfg.episodes, deterministic=cfg.deterministic, seed=cfg.seed)
    for split, stats in report["splits"].items():
        curve = ", ".join(f"{m:.3f}±{c:.3f}" for m, c in zip(stats["trial_mean"], stats["trial_ci95"]))
        print(f"{split:>16}: {curve}")
    print(json.dumps({"eval": os.path.join(cfg.run, "eval.json")}))


if __name__ == "__main__":
    main()
