"""A results report over a set of runs: per env x model tables, aggregates over envs, profiles, curves.

``write_report(root, out)`` writes into ``out``:
``report.md`` (the tables and the figures, for a paper or a PR), ``scores.csv`` (env, model, seeds,
mean and IQM with 95% stratified-bootstrap CIs over seeds), ``seeds.csv`` (every seed's own score:
what the tables were computed from), ``aggregate.csv`` / ``aggregate.png`` (mean, median and IQM of
normalised scores over envs), ``profile.png`` (performance profiles) and ``curves.png`` (learning
curves, mean over seeds with a bootstrap band).
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np
from rliable import library as rly

from ssmrl.experiment import report_plots
from ssmrl.experiment.results import SeedResult, group, read_results, scores
from ssmrl.experiment.statistics import Estimate, interval_estimates, per_seed_estimates

AGGREGATE_METRICS = ("mean", "median", "iqm")


@dataclasses.dataclass(frozen=True)
class Aggregate:
    envs: tuple[str, ...]  # envs with a normalised score that every model was run on
    runs: int  # seeds per env used (the fewest any model has on any of those envs)
    score_dict: dict[str, np.ndarray]  # model -> normalised scores [runs, envs]
    estimates: dict[str, dict[str, Estimate]]  # model -> metric -> estimate


def aggregate(results: list[SeedResult], reps: int) -> Aggregate | None:
    """Mean / median / IQM over the envs that have a normalised score, stratified by env; None if none."""
    table = group([r for r in results if r.normalized is not None])
    models = sorted({m for per_env in table.values() for m in per_env})
    envs = tuple(e for e in sorted(table) if all(m in table[e] for m in models))
    if not envs:
        return None
    runs = min(len(table[e][m]) for e in envs for m in models)
    # rliable wants a full [runs, envs] matrix; extra seeds of some cells are left out (said in the report).
    score_dict = {m: np.stack([scores(table[e][m][:runs], normalized=True) for e in envs], axis=1) for m in models}
    return Aggregate(envs, runs, score_dict, interval_estimates(score_dict, AGGREGATE_METRICS, reps))


def _write_csv(path: str, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def write_report(root: str, out: str, reps: int = 2000) -> dict:
    """Read every run under ``root`` and write the report files into ``out``; returns the numbers."""
    results = read_results(root)
    os.makedirs(out, exist_ok=True)
    table = group(results)
    models = sorted({r.model for r in results})
    cells = {(env, m): per_seed_estimates(scores(seeds), reps)
             for env, per_env in table.items() for m, seeds in per_env.items()}

    _write_csv(os.path.join(out, "seeds.csv"), ["env", "model", "run", "seed", "score", "normalized"],
               [[r.env, r.model, r.run, r.seed, r.score, "" if r.normalized is None else r.normalized]
                for r in sorted(results, key=lambda r: (r.env, r.model, r.run, r.seed))])
    _write_csv(os.path.join(out, "scores.csv"),
               ["env", "model", "seeds", "mean", "mean_low", "mean_high", "iqm", "iqm_low", "iqm_high"],
               [[env, m, len(table[env][m]), e["mean"].value, e["mean"].low, e["mean"].high,
                 e["iqm"].value, e["iqm"].low, e["iqm"].high] for (env, m), e in cells.items()])

    lines = [f"# Results: {os.path.abspath(root)}", "",
             f"{len(results)} seeds from {len({r.run for r in results})} run directories. Each cell: mean and IQM "
             f"over seeds with 95% stratified-bootstrap confidence intervals ({reps} resamples, rliable), "
             "then the number of seeds. A seed is one independent training run; every seed's own score is in "
             "`seeds.csv`.", "", "## Final score per env and model", ""]
    rows = [[env] + [f"{cells[env, m]['mean']} / IQM {cells[env, m]['iqm']} (n={len(table[env][m])})"
                     if (env, m) in cells else "" for m in models] for env in sorted(table)]
    lines += _markdown_table(["env", *models], rows)

    agg = aggregate(results, reps)
    if agg is not None:
        _write_csv(os.path.join(out, "aggregate.csv"), ["model", "envs", "seeds_per_env", "metric", "value", "low",
                                                        "high"],
                   [[m, len(agg.envs), agg.runs, n, e.value, e.low, e.high]
                    for m, per in agg.estimates.items() for n, e in per.items()])
        report_plots.aggregate_plot(agg.estimates, AGGREGATE_METRICS, os.path.join(out, "aggregate.png"))
        taus = np.linspace(min(s.min() for s in agg.score_dict.values()),
                           max(s.max() for s in agg.score_dict.values()), 81)
        profiles, profile_cis = rly.create_performance_profile(agg.score_dict, taus, reps=min(reps, 2000))
        report_plots.profile_plot(profiles, profile_cis, taus, os.path.join(out, "profile.png"))
        lines += ["", "## Aggregate over envs (normalised scores)", "",
                  f"Over {len(agg.envs)} envs ({', '.join(agg.envs)}), {agg.runs} seeds per env; Atari scores are "
                  "human-normalised, POPGym returns (in [-1, 1]) are used as they are; envs without a normalised "
                  "scale are not aggregated. Intervals resample seeds within each env (stratified bootstrap).", ""]
        lines += _markdown_table(["model", *AGGREGATE_METRICS],
                                 [[m, *(str(agg.estimates[m][n]) for n in AGGREGATE_METRICS)] for m in models])
        lines += ["", "![aggregate](aggregate.png)", "", "![performance profile](profile.png)"]
    if report_plots.curves_plot(table, os.path.join(out, "curves.png"), min(reps, 500)):
        lines += ["", "## Learning curves", "", "Mean over seeds, shaded: 95% bootstrap CI over seeds.", "",
                  "![learning curves](curves.png)"]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"cells": cells, "aggregate": agg, "results": results}
