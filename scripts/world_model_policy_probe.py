"""Which policy did a world-model agent settle on, and does its model rate policies as the env does?

    python scripts/world_model_policy_probe.py RUN_DIR [--episodes 256] [--horizon 16] [--segments 4]

RUN_DIR is a `train/world_model.py` run; its newest checkpoint is read. Two tables:

* the replay in ``--segments`` equal spans of env steps: how often each action was taken, the reward per
  finished episode and the steps per episode (the policy the agent followed, as it changed);
* ratings (``agents/world_model/ratings.py``): every constant action and the actor, run ``--horizon`` steps
  from the same ``--episodes`` fresh episodes in the env and, from their first frames, in the model: the
  return before the episode ends and the steps it lasts, by each. A model that rates a policy well above what
  the env pays, or rates apart policies the env scores alike (or the reverse), shows where the actor can be
  misled.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from ssmrl.agents.world_model.agent import make_env
from ssmrl.agents.world_model.ratings import ratings
from ssmrl.experiment import compile_cache
from ssmrl.experiment.run_dir import RunDirError
from ssmrl.experiment.world_model import open_world_model_run


def replay_segments(replay, num_envs: int, num_actions: int, segments: int) -> list[dict]:
    """The written rows of ``replay`` in ``segments`` equal spans: ``{env_steps: [from, to], actions: [A]
    frequencies, return_per_episode, steps_per_episode}`` (the last two None where no episode ended)."""
    size = int(replay.size)
    action, reward, term, first = (np.asarray(getattr(replay, k)[:size]) for k in ("action", "reward", "term", "first"))
    edges = np.linspace(0, size, segments + 1).astype(int)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        ends, starts = int(term[lo:hi].sum()), int(first[lo:hi].sum())
        taken = action[lo:hi].ravel()
        rows.append({
            "env_steps": [int(lo) * num_envs, int(hi) * num_envs],
            "actions": (np.bincount(taken, minlength=num_actions) / max(1, taken.size)).tolist(),
            "return_per_episode": float(reward[lo:hi].sum() / ends) if ends else None,
            "steps_per_episode": float(taken.size / starts) if starts else None,
        })
    return rows


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a train/world_model.py run directory")
    parser.add_argument("--episodes", type=int, default=256, help="fresh episodes every policy is rated on")
    parser.add_argument("--horizon", type=int, default=16, help="steps of each rated episode (the agent imagines "
                        "its preset's horizon)")
    parser.add_argument("--segments", type=int, default=4, help="spans of the replay table")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("episodes", "horizon", "segments"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    try:
        parts, step, state = open_world_model_run(args.run_dir)
    except RunDirError as error:
        parser.error(str(error))
    config = parts.config
    env, env_params = make_env(config, args.episodes)

    segments = replay_segments(state.replay, config.num_envs, parts.num_actions, args.segments)
    print(f"{config.model} on {config.env_name}, checkpoint {step}, {int(state.env_steps) * config.num_envs} env steps")
    print("\n| env steps | action frequencies | return per episode | steps per episode |\n|---|---|---|---|")
    for row in segments:
        freqs = " / ".join(f"{p:.2f}" for p in row["actions"])
        print(f"| {row['env_steps'][0]}-{row['env_steps'][1]} | {freqs} | {_fmt(row['return_per_episode'])} | "
              f"{_fmt(row['steps_per_episode'])} |")

    rated = ratings(parts, state.params, env, env_params, args.episodes, args.horizon, jax.random.PRNGKey(args.seed))
    print(f"\n{args.episodes} fresh episodes, {args.horizon} steps each:\n")
    print("| policy | return, model | return, env | steps, model | steps, env |\n|---|---|---|---|---|")
    for name, r in rated.items():
        print(f"| {name} | {_fmt(r['model_return'])} | {_fmt(r['env_return'])} | {r['model_steps']:.2f} | "
              f"{r['env_steps']:.2f} |")
    return {"checkpoint": step, "segments": segments, "ratings": rated}


if __name__ == "__main__":
    compile_cache.enable()  # a rerun (on another checkpoint, with other flags) loads what it compiled before
    main()
