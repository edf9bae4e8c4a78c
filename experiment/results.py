"""Read any set of run directories into one score per (run, seed): the input of ``train/report.py``.

Every ``summary.json`` under a folder is one run, wherever it sits (a Hydra multirun, separate runs,
runs copied together). A PPO run trained ``seeds=N`` seeds together and holds N final returns; every
other kind holds one. A seed is identified by its run directory and its index inside that run, so
two runs never merge or overwrite each other's numbers, even when they share a ``seed=``.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from ssmrl.envs.atari.scores import SCORES as ATARI_SCORES
from ssmrl.envs.atari.scores import human_normalized_score
from ssmrl.experiment.run_dir import RUN_FILE, read_json

ATARI_PREFIX = "atari/"


@dataclasses.dataclass(frozen=True)
class SeedResult:
    env: str
    model: str
    run: str  # run directory, relative to the folder that was read
    seed: int  # index of the seed inside its run (seeds trained together) or the run's seed= for single-seed runs
    score: float  # the run's final figure: evaluation return (or score, for Atari)
    normalized: float | None  # Atari: human-normalised; POPGym: the return itself ([-1, 1]); else None
    curve_steps: tuple[float, ...] = ()  # learning curve of this seed: env steps ...
    curve_returns: tuple[float, ...] = ()  # ... and the return there (NaN where none finished)


def normalize(env: str, score: float) -> float | None:
    """The score on a scale shared across envs, or ``None`` for envs without one."""
    game = env[len(ATARI_PREFIX):] if env.startswith(ATARI_PREFIX) else None
    if game in ATARI_SCORES:
        return float(human_normalized_score(game, score))
    from ssmrl.envs.popgym import ENVS as POPGYM_ENVS

    return float(score) if env in POPGYM_ENVS else None


def _floats(values) -> tuple[float, ...]:
    return tuple(math.nan if v is None else float(v) for v in values)


def _ppo(summary: dict, run: str, base_seed: int) -> list[SeedResult]:
    curve = summary.get("curve") or {}
    steps = _floats(curve.get("env_steps", ()))
    per_seed = curve.get("episode_return") or [()] * len(summary["final_return"])
    results = []
    for i, (score, returns) in enumerate(zip(summary["final_return"], per_seed)):
        seed = base_seed if len(summary["final_return"]) == 1 else i
        results.append(SeedResult(summary["env"], summary["model"], run, seed, float(score),
                                  normalize(summary["env"], float(score)), steps if returns else (),
                                  _floats(returns)))
    return results


def _world_model(summary: dict, run: str) -> list[SeedResult]:
    if summary.get("score") is None:
        return []
    env = ATARI_PREFIX + summary["game"]
    history = [h for h in summary.get("eval_history", []) if h[1] is not None]
    return [SeedResult(env, summary["model"], run, int(summary["seed"]), float(summary["score"]),
                       normalize(env, float(summary["score"])), tuple(float(h[0]) for h in history),
                       tuple(float(h[1]) for h in history))]


def _offline(summary: dict, run: str) -> list[SeedResult]:
    """DT / Meta-DT / Prompt-DT: one result per split (and mode), the env naming the split."""
    results = []
    for split, stats in summary["eval"].items():
        modes = stats if "return_mean" not in stats else {"": stats}
        for mode, s in modes.items():
            # Summaries written before the entry points shared one vocabulary name the model "backbone".
            name = summary.get("model", summary.get("backbone"))
            model = f"{summary.get('method', summary['kind'])}-{name}" + (f"/{mode}" if mode else "")
            results.append(SeedResult(f"{summary['env']} [{split}]", model, run, int(summary["seed"]),
                                      float(s["return_mean"]), None))
    return results


def read_results(root: str | pathlib.Path) -> list[SeedResult]:
    """Every seed of every finished run under ``root``; raises if there is none."""
    root = pathlib.Path(root)
    results: list[SeedResult] = []
    for path in sorted(root.rglob("summary.json")):
        summary = read_json(str(path))
        run = str(path.parent.relative_to(root)) or "."
        run_file = path.parent / RUN_FILE
        base_seed = int(read_json(str(run_file))["config"].get("seed", 0)) if run_file.exists() else 0
        if "final_return" in summary:
            results += _ppo(summary, run, base_seed)
        elif "game" in summary:
            results += _world_model(summary, run)
        elif "eval" in summary and "kind" in summary:
            results += _offline(summary, run)
    if not results:
        raise FileNotFoundError(f"no summary.json of a finished run under {root}")
    return results


def group(results: list[SeedResult]) -> dict[str, dict[str, list[SeedResult]]]:
    """env -> model -> seeds, in sorted order."""
    table: dict[str, dict[str, list[SeedResult]]] = {}
    for r in sorted(results, key=lambda r: (r.env, r.model, r.run, r.seed)):
        table.setdefault(r.env, {}).setdefault(r.model, []).append(r)
    return table


def scores(seeds: list[SeedResult], normalized: bool = False) -> np.ndarray:
    return np.array([s.normalized if normalized else s.score for s in seeds], np.float64)
