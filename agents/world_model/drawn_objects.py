"""Does the world model draw the objects a game is played with?

The moving pixels' error (:mod:`~ssmrl.agents.world_model.moving_content`) pools whatever moves: a model can halve it
by drawing the score and the opponent while leaving out the ball and the paddle its actor moves. A game's own reader
of its frames names the objects (Pong's: :func:`~ssmrl.envs.atari.pong.object_masks`, each object's pixels and the
region it moves in). Here the windows' frames, reconstructed and imagined as the agent's imagination sees them
(:func:`~ssmrl.agents.world_model.agent.open_loop_predictions`, the recorded actions), are read per object:

* **drawn**: the frames' distance from the background colour on the object's pixels (summed over the colour
  channels, in pixel levels), as a share of the real frame's there: 1, drawn as it is; 0, background;
* **elsewhere**: the same distance on the rest of the object's region, per pixel, as a share of the real object's
  per pixel: what the model paints where the object is not (a smear along a paddle's column when it draws the
  paddle's every position at once).

A drawn share no larger than the elsewhere share means the object is not drawn where it is.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.world_model.agent import Parts, open_loop_predictions
from ssmrl.agents.world_model.networks import postprocess
from ssmrl.agents.world_model.reward_events import over_batches, shown_frames
from ssmrl.envs.atari import pong

MEASURES = ("drawn", "elsewhere")
# env name -> (its background colour, its objects as object_sums takes them): the games whose objects are read
GAME_OBJECTS = {"atari/Pong": (pong.BACKGROUND, pong.object_masks)}


def object_sums(frames: jax.Array, real: jax.Array, background: jax.Array, objects: Callable) -> jax.Array:
    """``frames, real [T, B, H, W, 3]`` uint8, ``background [3]``, ``objects(real) -> {name: (region [H, W], pixels
    [T, B, H, W])}`` -> ``[objects, 4, T, B]``: per object and window row, the frames' and the real frames' distance
    from the background summed over the object's pixels, the frames' summed over the rest of its region, and the
    count of the object's pixels."""
    chex.assert_equal_shape([frames, real])
    distance = lambda x: jnp.abs(x.astype(jnp.float32) - background).sum(-1)  # noqa: E731
    drawn, seen = distance(frames), distance(real)
    total = lambda x, where: jnp.sum(jnp.where(where, x, 0.0), (2, 3))  # noqa: E731
    return jnp.stack([jnp.stack([total(drawn, pixels), total(seen, pixels), total(drawn, region & ~pixels),
                                 total(jnp.ones_like(drawn), pixels)])
                      for region, pixels in objects(real).values()])


def make_drawn_objects(parts: Parts, windows: dict, background, objects: Callable, batch: int = 64
                       ) -> Callable[[Any, jax.Array], dict]:
    """``drawn(wm_params, key) -> {object: {column: {"drawn", "elsewhere"}}}`` (None where the object is not in
    the column's rows) on :func:`~ssmrl.agents.world_model.reward_events.replay_windows`' ``windows`` of image
    observations, pooled over the observed rows (``observed``: reconstructions) and at the imagined frames of
    :func:`~ssmrl.agents.world_model.reward_events.shown_frames`; ``objects`` as :func:`object_sums` takes it. In
    batches of ``batch`` windows, compiled once for every call."""
    C = parts.config.imag_context
    names, regions = object_regions(windows["obs"], objects)
    background = jnp.asarray(background, jnp.float32)

    def sums(p, o, a, f, k):
        frames, _ = open_loop_predictions(parts, p, o, a, f, C, k)
        return object_sums(postprocess(frames, jnp.uint8), o, background, objects)

    measure = jax.jit(sums)
    columns = {"observed": np.arange(C), **{f"imagined {k}": np.asarray([C - 1 + k]) for k in shown_frames(parts)}}

    def drawn(wm_params, key: jax.Array) -> dict:
        totals = over_batches(measure, windows, batch, wm_params, key, 3)  # [objects, 4, T, N]
        return dict(zip(names, drawn_shares(totals, regions, columns)))

    return drawn


def object_regions(obs: np.ndarray, objects: Callable) -> tuple[list[str], np.ndarray]:
    """The objects' names and their regions' sizes in pixels, read from one frame of ``obs [T, N, ...]``."""
    sample = objects(obs[:1, :1])
    return list(sample), np.asarray([region.sum() for region, _ in sample.values()])


def drawn_shares(totals: np.ndarray, regions: np.ndarray, columns: dict) -> list[dict]:
    """:func:`object_sums`' ``totals [objects, 4, T, N]``, each object's region size in pixels ``regions
    [objects]``, ``columns`` (``{column: window rows}``) -> per object ``{column: {"drawn", "elsewhere"}}``, None
    where the object has no pixel in the column's rows."""
    table = []
    for sums, region in zip(totals, regions):
        row = {}
        for column, rows in columns.items():
            on, real, off, count = sums[:, rows].sum((1, 2))
            pixels_elsewhere = region * len(rows) * sums.shape[-1] - count
            row[column] = (dict(zip(MEASURES, (float(on / real), float(off / pixels_elsewhere / (real / count)))))
                           if count else None)
        table.append(row)
    return table


def format_drawn(table: dict) -> str:
    """:func:`make_drawn_objects`' table as Markdown: a row per object, a column per window position, each cell
    ``drawn / elsewhere``."""
    columns = list(next(iter(table.values())))
    lines = ["| object: drawn / elsewhere | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join("-" if e is None else f"{e['drawn']:.2f} / {e['elsewhere']:.2f}"
                                                 for e in row.values()) + " |")
    return "\n".join(lines)
