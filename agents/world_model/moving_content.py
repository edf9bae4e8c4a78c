"""Does the world model draw what moves?

A model that reconstructs only the still parts of its observations (a playfield's walls and colours, the score)
reaches a small reconstruction loss on frames whose moving objects are a few pixels, and holds nothing an actor
could act on. Here the windows' frames, reconstructed and imagined as the agent's imagination sees them
(:func:`~ssmrl.agents.world_model.agent.open_loop_predictions`, the recorded actions), are compared with the real
ones on the pixels that differ from a still frame, the window's own per-pixel median over its rows (what stays put
for the window's length: walls, colours, a score that did not change): the model's squared error there, as a share
of the still frame's. 0: the moving content is drawn as it was; 1: no better than drawing the still frame; above 1:
worse (moving content drawn in the wrong place). Observations are compared in ``preprocess``' units (pixels in
[-0.5, 0.5], vectors symlog); a value moves where it is more than
:data:`~ssmrl.agents.world_model.world_model.MOVING` away from the still frame's.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.world_model.agent import Parts, open_loop_predictions
from ssmrl.agents.world_model.networks import preprocess
from ssmrl.agents.world_model.reward_events import measure_rows, over_batches, shown_frames
from ssmrl.agents.world_model.world_model import moving_values, still_frame

MEASURES = ("moving pixels' error, a share of the still frame's", "share of the values moving")


def moving_sums(frames: jax.Array, real: jax.Array) -> jax.Array:
    """``frames, real [T, B, *obs_shape]`` (``preprocess``' units) -> ``[3, T, B]``: per window row, the squared
    error of ``frames`` summed over the values of ``real`` that move (more than ``MOVING`` from the window's still
    frame, its per-value median over the ``T`` rows), the still frame's summed over them, and their count."""
    chex.assert_equal_shape([frames, real])
    still = still_frame(real)
    moving = moving_values(real, still)
    values = tuple(range(2, real.ndim))
    total = lambda x: jnp.sum(jnp.where(moving, x, 0.0), values)  # noqa: E731
    return jnp.stack([total((frames - real) ** 2), total((still - real) ** 2), total(jnp.ones_like(real))])


def moving_errors(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, key: jax.Array
                  ) -> jax.Array:
    """:func:`moving_sums` of the frames the model reconstructs and imagines for windows ``obs [T, B,
    *obs_shape]``, ``action, first [T, B]``."""
    T, B = action.shape
    chex.assert_shape(obs, (T, B, *parts.obs_shape))
    frames, _ = open_loop_predictions(parts, wm_params, obs, action, first, parts.config.imag_context, key)
    return moving_sums(frames, preprocess(obs))


def make_moving_content(parts: Parts, windows: dict, batch: int = 64) -> Callable[[Any, jax.Array], dict]:
    """``content(wm_params, key) -> {column: {measure: value}}`` on
    :func:`~ssmrl.agents.world_model.reward_events.replay_windows`' ``windows``, pooled over the observed rows
    (``observed``: reconstructions) and at the imagined frames of
    :func:`~ssmrl.agents.world_model.reward_events.shown_frames` (``imagined k``, window row ``imag_context - 1 +
    k``; none with a horizon of 1); in batches of ``batch`` windows, compiled once for every call. A measure is None
    where no value moves."""
    C = parts.config.imag_context
    measure = jax.jit(lambda p, o, a, f, k: moving_errors(parts, p, o, a, f, k))
    columns = {"observed": np.arange(C), **{f"imagined {k}": np.asarray([C - 1 + k]) for k in shown_frames(parts)}}

    def content(wm_params, key: jax.Array) -> dict:
        sums = over_batches(measure, windows, batch, wm_params, key, 2)  # [3, T, N]
        size = np.prod(parts.obs_shape) * sums.shape[-1]
        table = {}
        for name, rows in columns.items():
            model, still, moving = sums[:, rows].sum((1, 2))
            table[name] = dict(zip(MEASURES, (float(model / still) if moving else None,
                                              float(moving / (size * len(rows))))))
        return table

    return content


def format_content(table: dict) -> str:
    """:func:`make_moving_content`'s table as Markdown: a row per measure, a column per window position."""
    return "\n".join(measure_rows("", table, MEASURES, 3))
