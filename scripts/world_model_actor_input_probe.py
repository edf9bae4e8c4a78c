"""Which card does a trained RepeatPrevious world-model agent's features hold? Linear probes on its own replay.

    python scripts/world_model_actor_input_probe.py RUN_DIR [--windows 512] [--length 64]

RUN_DIR is a `train/world_model.py` run on `RepeatPrevious*` (its newest checkpoint: parameters and replay).
Action ``a_t`` is paid for naming the suit of the card ``k - 1`` steps back (k = 4 on Easy). For every feature
the agent has (the actor's input ``s_t = [z_t, h_{t-1}]``, its parts, and ``h_t``, the sequence output after
``a_t``) and every lag, a ridge-regression probe fitted on half the windows' steps predicts the suit of the
card ``lag`` steps back; the other half gives its accuracy (chance 0.25). The actor can only choose well if
the lag ``k - 1`` card is readable from ``s_t``.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from ssmrl.agents.world_model import replay as rb
from ssmrl.experiment import compile_cache
from ssmrl.experiment.world_model import open_world_model_run

LAGS = (1, 2, 3, 4)


def features(run_dir: str, windows: int, length: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """``({name: [T, B, F]}, suits [T, B], steps into the episode [T, B])`` of replay windows."""
    parts, _, state = open_world_model_run(run_dir)
    _, batch = rb.sample(state.replay, jax.random.PRNGKey(1), windows, length)
    observe = jax.jit(lambda p, b: parts.wm.apply(p, parts.wm.initialize_carry(windows), b["obs"], b["action"],
                                                  b["first"], jax.random.split(jax.random.PRNGKey(2), length),
                                                  method="observe"))
    _, out = observe(state.params["wm"], batch)
    out = {k: np.asarray(v) for k, v in out.items()}
    feats = {"z_t": out["z"], "h_{t-1}": out["h_prev"], "s_t = [z_t, h_{t-1}] (actor)":
             np.concatenate([out["z"], out["h_prev"]], -1), "h_t (after a_t)": out["h"]}
    first = np.asarray(batch["first"])
    since = np.zeros(first.shape, int)  # steps since the episode's first frame (window start counts as far)
    last = np.full(first.shape[1], -length)
    for t in range(length):
        last = np.where(first[t], t, last)
        since[t] = t - last
    return feats, np.asarray(batch["obs"]).argmax(-1), since


def probe_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Ridge regression onto one-hot suits, fitted on the first half of the rows, accuracy on the second."""
    x = np.concatenate([x, np.ones((len(x), 1))], 1)
    n = len(y) // 2
    w = np.linalg.solve(x[:n].T @ x[:n] + 1e-2 * np.eye(x.shape[1]), x[:n].T @ np.eye(4)[y[:n]])
    return float(np.mean(np.argmax(x[n:] @ w, 1) == y[n:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--windows", type=int, default=512)
    parser.add_argument("--length", type=int, default=64)
    args = parser.parse_args()
    feats, suit, since = features(args.run_dir, args.windows, args.length)
    T, B = suit.shape
    print("| feature | " + " | ".join(f"card t-{lag}" for lag in LAGS) + " |")
    print("|---|" + "---|" * len(LAGS))
    for name, x in feats.items():
        row = []
        for lag in LAGS:
            valid = since[lag:] >= lag  # the card lag steps back is in the same episode
            target = suit[:-lag][valid]
            row.append(f"{probe_accuracy(x[lag:][valid].reshape(len(target), -1), target):.3f}")
        print(f"| {name} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    compile_cache.enable()  # a rerun (on another checkpoint, with other flags) loads what it compiled before
    main()
