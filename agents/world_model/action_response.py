"""Does imagination answer the actor?

The actor learns from differences between the returns imagination gives its actions, so a model that imagines the
same game whatever the actions leaves it no advantage to follow, however well it predicts the rewards. Here windows
of a replay are imagined as the agent's imagination sees them (``imag_context`` frames observed, then ``horizon``
steps open-loop; :func:`~ssmrl.agents.world_model.agent.open_loop_predictions`), once with each action held from
the last observed step on (that step's action is the first the sequence model reads after the frames, so imagined
frame 1 is the first it can change), all with one sampling key. Per imagined frame ``k`` (1 .. horizon - 1: the
window's last action leads out of it), the frames' mean absolute difference between two held actions (over every
pair) is set beside the difference the recorded actions imagined with another sampling key make: the model's
answer to the actions against its own sampling noise. The spread of the reward predicted for imagined step ``k``
(the action that led to frame ``k``) over the held actions, the largest minus the smallest, is what the actor could
learn from there. Frames are compared in ``preprocess``' units (pixels in [-0.5, 0.5], vectors symlog).
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.world_model.agent import Parts, open_loop_predictions
from ssmrl.agents.world_model.reward_events import measure_rows, over_batches, shown_frames, window_length

MEASURES = ("frames: actions apart", "frames: sampling keys apart", "reward: actions' range")


def action_response(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, key: jax.Array
                    ) -> jax.Array:
    """``obs [T, B, *obs_shape]``, ``action, first [T, B]`` (``T`` = :func:`window_length`) -> ``[3, H - 1, B]``:
    per imagined frame ``k`` (row ``k - 1``) and window, the measures of ``MEASURES``: the frames' mean absolute
    difference between held actions (the mean over the ``A (A - 1) / 2`` pairs), between the recorded actions
    imagined with ``key`` and with another key, and the range of the predicted rewards over the held actions."""
    C, T, A = parts.config.imag_context, window_length(parts), parts.num_actions
    chex.assert_shape([action, first], (T, obs.shape[1]))
    k_same, k_other = jax.random.split(key)

    def imagine(actions: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        frames, logits = open_loop_predictions(parts, wm_params, obs, actions, first, C, k)
        return frames[C:], parts.wm.reward_value(logits)[C - 1:-1]  # imagined frames 1..H-1; their actions' rewards

    held = jnp.arange(A)[:, None, None] * jnp.ones_like(action[C - 1:])
    frames, rewards = jax.vmap(lambda a: imagine(action.at[C - 1:].set(a), k_same))(held)  # [A, H - 1, B, ...]
    i, j = np.triu_indices(A, 1)
    pixels = tuple(range(3, frames.ndim))
    apart = jnp.mean(jnp.abs(frames[i] - frames[j]), pixels).mean(0)  # [H - 1, B]
    recorded, _ = imagine(action, k_same)
    other, _ = imagine(action, k_other)
    noise = jnp.mean(jnp.abs(recorded - other), tuple(range(2, other.ndim)))
    return jnp.stack([apart, noise, rewards.max(0) - rewards.min(0)])


def make_action_response(parts: Parts, windows: dict, batch: int = 64) -> Callable[[Any, jax.Array], dict]:
    """``response(wm_params, key) -> {"imagined k": {measure: mean over windows}}`` for the frames ``k`` of
    :func:`~ssmrl.agents.world_model.reward_events.shown_frames`, on
    :func:`~ssmrl.agents.world_model.reward_events.replay_windows`' ``windows``, in batches of ``batch`` windows;
    compiled once for every call. A horizon of 1 imagines no frame in a window."""
    if parts.config.horizon < 2:
        raise ValueError(f"a horizon of {parts.config.horizon} imagines no frame in a window: nothing to compare")
    measure = jax.jit(lambda p, o, a, f, k: action_response(parts, p, o, a, f, k))

    def response(wm_params, key: jax.Array) -> dict:
        means = over_batches(measure, windows, batch, wm_params, key, 2).mean(-1)  # [3, H - 1]
        return {f"imagined {k}": dict(zip(MEASURES, means[:, k - 1].tolist())) for k in shown_frames(parts)}

    return response


def format_response(table: dict) -> str:
    """:func:`make_action_response`'s table as Markdown: a row per measure, a column per imagined step."""
    return "\n".join(measure_rows("mean over windows", table, MEASURES, 5))
