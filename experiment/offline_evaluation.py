"""Evaluate an offline run (DT, Meta-DT, Prompt-DT) from its directory: per-task returns on the train and
held-out tasks from the newest checkpoint, written to ``eval.json`` and plotted in ``eval.png``."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

OFFLINE_KINDS = ("dt", "meta_dt")


def evaluate_offline_run(run_dir: str, run: dict, episodes: int, seed: int) -> dict:
    """``run``: the run's ``run.json``; ``episodes`` per split, spread over its tasks (rounded up)."""
    from ssmrl.experiment.dt import evaluate_saved_dt
    from ssmrl.experiment.meta_dt import evaluate_saved_meta

    values = run["config"]
    evaluate = evaluate_saved_dt if run["kind"] == "dt" else evaluate_saved_meta
    result = evaluate(values, run_dir, episodes, seed)
    # a meta_dt run is Meta-DT or Prompt-DT: the method names it in the report and the plot
    report = {"run": os.path.abspath(run_dir), "kind": values.get("meta", {}).get("method", run["kind"]),
              "env": values["env"],
              "dataset": values["dataset"], "model": values["dt"]["backbone"], "seed": seed, **result}
    with open(os.path.join(run_dir, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot(report, os.path.join(run_dir, "eval.png"))
    return report


def plot(report: dict, path: str) -> None:
    """One panel per split: each mode's mean return per task, and the task's best return in the data."""
    splits = report["splits"]
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for ax, (split, modes) in zip(axes[0], splits.items()):
        for mode, stats in modes.items():
            per_task = np.asarray(stats["per_task_return"])
            ax.plot(np.arange(len(per_task)), per_task, "o", ms=4, alpha=0.8,
                    label=f"{mode} ({stats['return_mean']:.2f})")
        targets = np.asarray(next(iter(modes.values()))["targets"])
        ax.plot(np.arange(len(targets)), targets, "x", color="gray", label="target (data best)")
        ax.set_xlabel(f"{split} task")
        ax.set_ylabel("mean return")
        ax.set_title(split)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{report['kind']}-{report['model']} on {report['env']} ({report['dataset']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
