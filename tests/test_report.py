"""train/report.py on a fabricated sweep: 3 seeds x 2 models x 2 POPGym envs, in the trainers' formats."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from ssmrl.experiment.report import write_report
from ssmrl.experiment.results import read_results
from ssmrl.experiment.statistics import per_seed_estimates

# env -> model -> the three seeds' final returns
FINAL = {
    "RepeatPreviousEasy": {"s5": [0.9, 0.8, 0.1], "gru": [0.2, 0.3, 0.4]},
    "CountRecallEasy": {"s5": [0.5, 0.6, 0.7], "gru": [-0.5, -0.4, -0.3]},
}


def write_ppo_run(directory, env, model, seed_returns, seed=0):
    """A run directory as experiment.ppo.run_ppo writes it (only the fields the report reads, plus some)."""
    directory.mkdir(parents=True)
    steps = [1000 * (u + 1) for u in range(10)]
    curves = [[None if u == 0 else r * u / 9 for u in range(10)] for r in seed_returns]
    (directory / "run.json").write_text(json.dumps({"kind": "ppo", "version": "0.1.0", "config": {
        "ppo": {"env_name": env, "model": model}, "seeds": len(seed_returns), "seed": seed}}))
    (directory / "summary.json").write_text(json.dumps({
        "env": env, "model": model, "seeds": len(seed_returns), "env_steps": steps[-1], "updates": 10,
        "finished": True, "final_return": seed_returns, "final_return_mean": float(np.mean(seed_returns)),
        "curve": {"env_steps": steps, "episode_return": curves}}))


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for env, per_model in FINAL.items():
        # s5: one vmapped run holding 3 seeds; gru: three separate single-seed runs with the same seed=0
        write_ppo_run(root / f"0_{env}_s5", env, "s5", per_model["s5"])
        for i, r in enumerate(per_model["gru"]):
            write_ppo_run(root / f"{env}_gru" / f"run{i}", env, "gru", [r], seed=0)
    return root


def test_seeds_are_never_merged(sweep):
    results = read_results(sweep)
    assert len(results) == 12
    gru = sorted(r.score for r in results if r.env == "RepeatPreviousEasy" and r.model == "gru")
    assert gru == pytest.approx([0.2, 0.3, 0.4])
    assert all(r.normalized == r.score for r in results)  # POPGym returns are their own normalised score


def test_tables_hold_mean_iqm_and_bootstrap_cis_over_seeds(sweep, tmp_path):
    out = tmp_path / "report"
    numbers = write_report(str(sweep), str(out), reps=500)
    for name in ("report.md", "scores.csv", "seeds.csv", "aggregate.csv", "aggregate.png", "profile.png",
                 "curves.png"):
        assert (out / name).stat().st_size > 0, name
    cells = numbers["cells"]
    for env, per_model in FINAL.items():
        for model, values in per_model.items():
            e = cells[env, model]
            assert e["mean"].value == pytest.approx(np.mean(values))
            assert e["iqm"].value == pytest.approx(stats.trim_mean(values, 0.25))
            assert e["mean"].low <= e["mean"].value <= e["mean"].high
            assert min(values) - 1e-9 <= e["mean"].low and e["mean"].high <= max(values) + 1e-9
    # the spread-out s5 seeds get a wider interval than the evenly spaced gru seeds
    wide, narrow = cells["RepeatPreviousEasy", "s5"]["mean"], cells["RepeatPreviousEasy", "gru"]["mean"]
    assert wide.high - wide.low > narrow.high - narrow.low

    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert {(r["env"], r["model"], r["seeds"]) for r in rows} == {(e, m, "3") for e in FINAL for m in FINAL[e]}
    assert len(list(csv.DictReader(open(out / "seeds.csv")))) == 12

    agg = numbers["aggregate"]
    assert agg.envs == ("CountRecallEasy", "RepeatPreviousEasy") and agg.runs == 3
    s5 = np.array(FINAL["CountRecallEasy"]["s5"] + FINAL["RepeatPreviousEasy"]["s5"])
    assert agg.estimates["s5"]["mean"].value == pytest.approx(s5.mean())
    assert agg.estimates["s5"]["iqm"].value == pytest.approx(stats.trim_mean(s5, 0.25))
    # rliable's median is over envs of each env's mean score
    assert agg.estimates["s5"]["median"].value == pytest.approx(np.median(s5.reshape(2, 3).mean(1)))
    text = (out / "report.md").read_text()
    assert "| RepeatPreviousEasy | " in text and "(n=3)" in text


def test_iqm_drops_the_outer_quarters():
    e = per_seed_estimates(np.array([0.0, 1.0, 2.0, 3.0, 100.0]), reps=200)
    assert e["iqm"].value == pytest.approx(2.0) and e["mean"].value == pytest.approx(21.2)


def test_cli_names_a_missing_folder(tmp_path):
    out = subprocess.run([sys.executable, "train/report.py", str(tmp_path / "nope")], capture_output=True, text=True)
    assert out.returncode != 0 and "is not a directory" in out.stderr


def test_atari_world_model_runs_are_human_normalised(tmp_path):
    # HNS per game and seed: Freeway [0, 1], Pong [1, 1], Boxing [0, 0], Breakout [0, 2]
    runs = {"Freeway": [0.0, 29.6], "Pong": [14.6, 14.6], "Boxing": [0.1, 0.1], "Breakout": [1.7, 59.3]}
    for game, seed_scores in runs.items():
        for seed, score in enumerate(seed_scores):
            run = tmp_path / "sweep" / f"{game}_drama_{seed}"
            run.mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps({"game": game, "model": "drama", "seed": seed,
                                                          "score": score, "eval_history": [[4000, score, 8]]}))
    agg = write_report(str(tmp_path / "sweep"), str(tmp_path / "report"), reps=200)["aggregate"]
    assert agg.envs == ("atari/Boxing", "atari/Breakout", "atari/Freeway", "atari/Pong") and agg.runs == 2
    est = agg.estimates["drama"]
    assert est["mean"].value == pytest.approx(0.625)
    assert est["median"].value == pytest.approx(0.75)  # over games of each game's mean
    assert est["iqm"].value == pytest.approx(0.5)  # pooled [0,0,0,0,1,1,1,2]: middle four 0,0,1,1
