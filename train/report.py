"""A results report over any set of runs: ``python train/report.py runs/<sweep> [--out DIR] [--reps N]``.

Reads every ``summary.json`` under the folder (Hydra multiruns, separate runs, vmapped seeds) and
writes ``report.md``, ``scores.csv``, ``seeds.csv``, ``aggregate.csv``, ``aggregate.png``,
``profile.png`` and ``curves.png`` into ``--out`` (default ``<folder>/report``): mean and IQM per env
x model with stratified-bootstrap CIs over seeds, normalised aggregates over envs, performance
profiles and learning curves with seed bands (``experiment.report``).
"""

from __future__ import annotations

import argparse
import os

from ssmrl.experiment.report import write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder holding run directories (searched recursively for summary.json)")
    parser.add_argument("--out", help="where the report goes (default: <root>/report)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (rliable suggests 50000)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        parser.error(f"{args.root} is not a directory")
    if args.reps < 1:
        parser.error(f"--reps must be a positive integer, got {args.reps}")
    out = args.out or os.path.join(args.root, "report")
    write_report(args.root, out, args.reps)
    with open(os.path.join(out, "report.md")) as f:
        print(f.read())
    print(f"report written to {out}/")


if __name__ == "__main__":
    main()
