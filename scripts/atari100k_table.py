"""Collect world-model ``summary.json`` files into an Atari100k table: raw score and HNS per game
and model (mean over seeds), then the mean / median / IQM of the human-normalised scores.

    python scripts/atari100k_table.py runs/atari100k/<date>
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from envs.atari.scores import aggregate, human_normalized_score  # noqa: E402


def collect(root: str) -> dict[str, dict[str, list[float]]]:
    """model -> game -> raw scores (one per run with a score)."""
    scores: dict[str, dict[str, list[float]]] = {}
    for path in sorted(pathlib.Path(root).rglob("summary.json")):
        s = json.loads(path.read_text())
        if s.get("score") is not None:
            scores.setdefault(s["model"], {}).setdefault(s["game"], []).append(float(s["score"]))
    return scores


def table(scores: dict[str, dict[str, list[float]]]) -> str:
    models = sorted(scores)
    games = sorted({g for per in scores.values() for g in per})
    lines = ["| game | " + " | ".join(f"{m} score | {m} HNS" for m in models) + " |",
             "|---|" + "---|---|" * len(models)]
    for game in games:
        cells = []
        for m in models:
            runs = scores[m].get(game)
            if runs:
                cells += [f"{np.mean(runs):.1f}", f"{np.mean(human_normalized_score(game, runs)):.3f}"]
            else:
                cells += ["", ""]
        lines.append(f"| {game} | " + " | ".join(cells) + " |")
    lines += ["", "| model | games | mean HNS | median HNS | IQM HNS |", "|---|---|---|---|---|"]
    for m in models:
        agg = aggregate(scores[m])
        lines.append(f"| {m} | {len(scores[m])} | {agg['mean']:.3f} | {agg['median']:.3f} | {agg['iqm']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(collect(sys.argv[1])))
