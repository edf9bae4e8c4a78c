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

What the actor follows is the return imagination gives each action (:func:`action_returns`): the rewards predicted for
imagined steps 1 .. H - 1 summed, with the action held, and with it taken once and the recorded actions after, set
beside what the env paid over as many steps from each action the replay took (:func:`paid_after_actions`). Two
actions the env pays alike that imagination rates apart are a preference the actor can learn from the model alone.
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
RETURNS = ("imagined: the action held", "imagined: the action once, the recorded ones after",
           "replay: paid from the action on")


def imagined(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, key: jax.Array
             ) -> tuple[jax.Array, jax.Array]:
    """Windows ``obs [T, B, *obs_shape]``, ``action, first [T, B]`` imagined from their last observed step with
    ``action`` -> ``(frames [H - 1, B, *obs_shape], rewards [H - 1, B])``: imagined frames 1 .. H - 1 and the rewards
    predicted for the actions that led to them (the window's last action leads out of it)."""
    C = parts.config.imag_context
    frames, logits = open_loop_predictions(parts, wm_params, obs, action, first, C, key)
    return frames[C:], parts.wm.reward_value(logits)[C - 1:-1]


def action_response(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, key: jax.Array
                    ) -> jax.Array:
    """``obs [T, B, *obs_shape]``, ``action, first [T, B]`` (``T`` = :func:`window_length`) -> ``[3, H - 1, B]``:
    per imagined frame ``k`` (row ``k - 1``) and window, the measures of ``MEASURES``: the frames' mean absolute
    difference between held actions (the mean over the ``A (A - 1) / 2`` pairs), between the recorded actions
    imagined with ``key`` and with another key, and the range of the predicted rewards over the held actions."""
    C, T, A = parts.config.imag_context, window_length(parts), parts.num_actions
    chex.assert_shape([action, first], (T, obs.shape[1]))
    k_same, k_other = jax.random.split(key)
    held = jnp.arange(A)[:, None, None] * jnp.ones_like(action[C - 1:])
    frames, rewards = jax.vmap(lambda a: imagined(parts, wm_params, obs, action.at[C - 1:].set(a), first, k_same))(
        held)  # [A, H - 1, B, ...]
    i, j = np.triu_indices(A, 1)
    pixels = tuple(range(3, frames.ndim))
    apart = jnp.mean(jnp.abs(frames[i] - frames[j]), pixels).mean(0)  # [H - 1, B]
    recorded, _ = imagined(parts, wm_params, obs, action, first, k_same)
    other, _ = imagined(parts, wm_params, obs, action, first, k_other)
    noise = jnp.mean(jnp.abs(recorded - other), tuple(range(2, other.ndim)))
    return jnp.stack([apart, noise, rewards.max(0) - rewards.min(0)])


def action_returns(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, key: jax.Array
                   ) -> jax.Array:
    """Windows as :func:`action_response`'s -> ``[2, A, B]``: per action and window, the rewards predicted for
    imagined steps 1 .. H - 1 summed, with the action held from the last observed step on (row 0) and with it at that
    step only, the recorded actions after (row 1); one sampling key for all."""
    C, T, A = parts.config.imag_context, window_length(parts), parts.num_actions
    chex.assert_shape([action, first], (T, obs.shape[1]))

    def summed(actions: jax.Array) -> jax.Array:
        return imagined(parts, wm_params, obs, actions, first, key)[1].sum(0)

    each = jnp.arange(A)
    return jnp.stack([jax.vmap(lambda a: summed(action.at[C - 1:].set(a)))(each),
                      jax.vmap(lambda a: summed(action.at[C - 1].set(a)))(each)])


def paid_after_actions(action: np.ndarray, reward: np.ndarray, first: np.ndarray, steps: int, num_actions: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Replay rows ``action, reward, first [N, E]`` -> ``(paid [A], rows [A])``: per action, the mean of what the env
    paid for it and the ``steps - 1`` actions after (``reward[t:t + steps]`` summed) over the rows ``t`` that took it
    and whose next ``steps - 1`` rows start no episode, and how many such rows; NaN where there are none."""
    starts = np.arange(action.shape[0] - steps + 1)
    rows = starts[:, None] + np.arange(steps)  # [S, steps]
    paid = reward[rows].sum(1)  # [S, E]
    whole = ~first[rows[:, 1:]].any(1)
    taken = [whole & (action[starts] == a) for a in range(num_actions)]
    counts = np.array([t.sum() for t in taken])
    means = np.array([paid[t].mean() if n else np.nan for t, n in zip(taken, counts)])
    return means, counts


def make_action_returns(parts: Parts, windows: dict, replay_rows: dict, batch: int = 64
                        ) -> Callable[[Any, jax.Array], dict]:
    """``returns(wm_params, key) -> {measure: [A] values}`` (``RETURNS``, then ``"replay rows"``): the means over
    :func:`~ssmrl.agents.world_model.reward_events.replay_windows`' ``windows`` of :func:`action_returns`, and
    :func:`paid_after_actions` over ``H - 1`` steps of ``replay_rows`` (``{action, reward, first [N, E]}``). In
    batches of ``batch`` windows, compiled once for every call."""
    H, A = parts.config.horizon, parts.num_actions
    if H < 2:
        raise ValueError(f"a horizon of {H} imagines no step in a window: no return to compare")
    paid, rows = paid_after_actions(*(np.asarray(replay_rows[n]) for n in ("action", "reward", "first")), H - 1, A)
    measure = jax.jit(lambda p, o, a, f, k: action_returns(parts, p, o, a, f, k))

    def returns(wm_params, key: jax.Array) -> dict:
        held, once = over_batches(measure, windows, batch, wm_params, key, 2).mean(-1)  # [2, A]
        return dict(zip(RETURNS, (held.tolist(), once.tolist(), paid.tolist()))) | {"replay rows": rows.tolist()}

    return returns


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


def format_returns(table: dict) -> str:
    """:func:`make_action_returns`' table as Markdown: a row per measure, a column per action."""
    A = len(table["replay rows"])
    lines = ["| mean | " + " | ".join(f"action {a}" for a in range(A)) + " |", "|---|" + "---|" * A]
    lines += [f"| {name} | " + " | ".join(f"{v:+.3f}" for v in table[name]) + " |" for name in RETURNS]
    lines.append("| replay rows | " + " | ".join(str(n) for n in table["replay rows"]) + " |")
    return "\n".join(lines)
