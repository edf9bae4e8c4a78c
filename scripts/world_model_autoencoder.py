"""Does a world-model run's encoder and decoder, trained alone as an autoencoder, draw what moves in its replay's
frames? (agents/world_model/autoencoder.py)

    python scripts/world_model_autoencoder.py RUN_DIR --updates 3200 --every 400 [--bottleneck onehot]
        [--set wm_lr=1e-3 --set latent_groups=32 ...] [--seed 0]

RUN_DIR is a `train/world_model.py` run; its newest checkpoint's replay is read. A fresh encoder and decoder of the
run's world model (its settings with each ``--set NAME=VALUE`` changed: ``channels``, ``kernel``, ``wm_lr``,
``latent_groups`` ...) are trained on batches of ``--batch`` frames from the replay's rows before the fraction
``--from``, with the world model's optimiser and reconstruction loss, through ``--bottleneck`` (none, onehot: the
latent's form, dense, posterior: the world model's posterior head). Every ``--every`` updates it prints the mean
loss and the moving pixels' error of ``--windows`` windows per env from the rows after ``--from``: the squared error
on the values away from each window's median frame, a share of that still frame's (1: no better than drawing the
still frame). Set beside a ``--refit`` of
scripts/world_model_reward_events.py at the same settings, which prints the same measure for the whole world model.
On a game whose objects are read (Pong; agents/world_model/drawn_objects.py), the last reconstructions are read per
object too: how much of each the autoencoder draws where it is, beside what it paints elsewhere in its region.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.config import ConfigError
from ssmrl.agents.world_model.agent import build
from ssmrl.agents.world_model.autoencoder import BOTTLENECKS, fit_autoencoder, frame_autoencoder
from ssmrl.agents.world_model.drawn_objects import (
    GAME_OBJECTS,
    drawn_shares,
    format_drawn,
    object_regions,
    object_sums,
)
from ssmrl.agents.world_model.networks import postprocess
from ssmrl.agents.world_model.probe import setting, with_settings
from ssmrl.agents.world_model.reward_events import replay_windows, window_length
from ssmrl.experiment import compile_cache
from ssmrl.experiment.run_dir import RunDirError
from ssmrl.experiment.world_model import open_world_model_run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a train/world_model.py run directory")
    parser.add_argument("--updates", type=int, default=3200)
    parser.add_argument("--every", type=int, default=400, help="print the loss and what is drawn every N updates")
    parser.add_argument("--bottleneck", default="none", choices=BOTTLENECKS)
    parser.add_argument("--batch", type=int, default=128, help="frames per update")
    parser.add_argument("--from", dest="start", type=float, default=0.75,
                        help="fraction of the replay's rows trained on; the windows are drawn from the rest")
    parser.add_argument("--windows", type=int, default=256, help="measured windows per env")
    parser.add_argument("--set", dest="changes", action="append", default=[], type=setting, metavar="NAME=VALUE",
                        help="a world-model setting changed, e.g. wm_lr=1e-3")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.updates < 1 or args.every < 1 or args.batch < 1 or args.windows < 1:
        parser.error(f"--updates, --every, --batch and --windows must be >= 1, got {args.updates}, {args.every}, "
                     f"{args.batch}, {args.windows}")
    if not 0 < args.start < 1:
        parser.error(f"--from must be in (0, 1), got {args.start}")
    try:
        parts, step, state = open_world_model_run(args.run_dir)
        parts = build(with_settings(parts.config, dict(args.changes)))
    except RunDirError as error:
        parser.error(str(error))
    except ConfigError as error:
        parser.error(f"--set: {error}")
    config = parts.config
    size = int(state.replay.size)
    split = int(args.start * size)
    length = window_length(parts)
    if split < 1 or size - split < length:
        parser.error(f"--from {args.start} splits the replay's {size} rows into {split} to train on and "
                     f"{size - split} to measure on; at least 1 and a {length}-step window are needed")
    frames = np.asarray(state.replay.obs[:split]).reshape(-1, *parts.obs_shape)  # [rows * E, *obs_shape], host
    windows = replay_windows(state.replay, length, split, args.windows)["obs"]
    model = frame_autoencoder(config, parts.obs_shape, args.bottleneck)
    width = f" {config.posterior_layers} x {config.mlp_hidden}" if config.posterior_layers else ""
    head = f", head {config.posterior_head}{width}, unimix {config.unimix}" if args.bottleneck == "posterior" else ""
    print(f"{config.model} on {config.env_name}, checkpoint {step}: {frames.shape[0]} frames to train on, "
          f"{windows.shape[1]} windows to measure; channels {tuple(config.channels)}, kernel {config.kernel}, "
          f"bottleneck {args.bottleneck} ({config.latent_groups} x {config.latent_classes}{head}), "
          f"lr {config.wm_lr}, seed {args.seed}", flush=True)
    progress, started = [], time.time()

    def report(i: int, loss: float, moving: float | None):
        progress.append({"update": i, "loss": loss, "moving": moving})
        drawn = "-" if moving is None else f"{moving:.3f}"
        print(f"update {i}: reconstruction loss {loss:.2f}, moving pixels' error {drawn} of the still frame's, "
              f"{time.time() - started:.0f} s", flush=True)

    params, _ = fit_autoencoder(model, parts.wm_tx, frames, windows, args.updates, args.batch, args.seed, args.every,
                                report)
    game, objects = GAME_OBJECTS.get(config.env_name), None
    if game is not None:
        objects = reconstructed_objects(model, params, windows, *game, jax.random.PRNGKey(args.seed))
        print("\nThe game's objects in the reconstructions: the distance from the background on each object's pixels, "
              "a share of the real frame's (drawn), and on the rest of its region, a share of the real object's per "
              "pixel (elsewhere)\n\n" + format_drawn(objects))
    return {"checkpoint": step, "frames": int(frames.shape[0]), "progress": progress, "objects": objects}


def reconstructed_objects(model, params, windows: np.ndarray, background, objects, key: jax.Array) -> dict:
    """:func:`~ssmrl.agents.world_model.drawn_objects.drawn_shares` of the autoencoder's reconstructions of
    ``windows [T, W, *obs_shape]`` (in batches of 64 windows), pooled over every row: ``{object: {"reconstructed":
    {"drawn", "elsewhere"}}}``."""
    names, regions = object_regions(windows, objects)

    @jax.jit
    def sums(obs):
        drawn = model.apply(params, obs.reshape(-1, *obs.shape[2:]), key).reshape(obs.shape)
        return object_sums(postprocess(drawn, jnp.uint8), obs, jnp.asarray(background, jnp.float32), objects)

    totals = np.concatenate([np.asarray(sums(windows[:, j:j + 64])) for j in range(0, windows.shape[1], 64)], 3)
    shares = drawn_shares(totals, regions, {"reconstructed": np.arange(windows.shape[0])})
    return dict(zip(names, shares))


if __name__ == "__main__":
    compile_cache.enable()
    main()
