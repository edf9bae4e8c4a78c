"""Collect the summary.json files under a folder into a Markdown table.

    python scripts/summaries_table.py runs/popgym-table/<date>            # env rows x model columns, seed means
    python scripts/summaries_table.py runs/popgym16 --seeds               # model rows x env columns, per seed

With ``--seeds`` every cell is the mean final return across seeds, its 95% percentile-bootstrap interval
(10,000 resamples of the seeds, so with 3 seeds it only spans what the seeds span) and every seed's value.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np


def bootstrap_ci(values: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``values [n]``, resampling the values."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def seed_cell(returns: list[float]) -> str:
    values = np.asarray(returns, np.float64)
    lo, hi = bootstrap_ci(values)
    return f"{values.mean():.3f} [{lo:.3f}, {hi:.3f}] ({', '.join(f'{v:.3f}' for v in values)})"


def main(root: str, seeds: bool) -> None:
    cells: dict[str, dict[str, str]] = {}
    for path in sorted(pathlib.Path(root).rglob("summary.json")):
        s = json.loads(path.read_text())
        row, column = (s["model"], s["env"]) if seeds else (s["env"], s["model"])
        cells.setdefault(row, {})[column] = seed_cell(s["final_return"]) if seeds else f"{s['final_return_mean']:.3f}"
    columns = sorted({c for row in cells.values() for c in row})
    print(f"| {'model' if seeds else 'env'} | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for row in sorted(cells):
        print(f"| {row} | " + " | ".join(cells[row].get(c, "") for c in columns) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--seeds", action="store_true", help="model rows; mean, bootstrap CI and every seed")
    args = parser.parse_args()
    main(args.root, args.seeds)
