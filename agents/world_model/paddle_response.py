"""Does imagination move the agent's paddle as the game does?

The frames' distance between held actions (:mod:`~ssmrl.agents.world_model.action_response`) pools every pixel of
a frame: a paddle of a few pixels drawn a few rows higher or lower moves it by about 0.001, whether the model
answers the action fully or not at all beside its sampling noise. Here the paddle's position is read instead, on a
game with a reader for it (Pong: :func:`~ssmrl.envs.atari.pong.paddle_row`, the agent's paddle's row in a frame)
and the actions that move it up and down. Windows of a replay are observed for ``imag_context`` frames and imagined
open-loop from there, as the agent imagines (:func:`~ssmrl.agents.world_model.agent.open_loop_predictions`), and per
window row, in the frame's rows (pixels):

* **row error**: how far the paddle of the frame reconstructed or imagined with the recorded actions stands from
  the real frame's;
* **real move**: how far the real paddle moved from the last observed frame: the error of a model that leaves the
  paddle where it was last seen;
* **down minus up, imagined**: the paddle's row with a down action held from the last observed step on, less its row
  with an up action held (each the mean over the actions of its kind, one sampling key), at imagined frame ``k``.

The replay says what the game does (:func:`held_moves`): after ``k`` steps of down actions, how much further down
the real paddle moved than after ``k`` steps of up actions, over the rows of random or agent play that held one or
the other. A model that answers the actions as the game does imagines about that distance; one that ignores them, 0.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.world_model.agent import Parts, open_loop_predictions
from ssmrl.agents.world_model.networks import postprocess
from ssmrl.agents.world_model.reward_events import measure_rows, over_batches, shown_frames, window_length
from ssmrl.envs.atari import pong

MEASURES = ("row error, recorded actions", "real move since the last observed frame", "down minus up, imagined",
            "down minus up, replay")
# env name -> (its paddle's row in frames [..., H, W, C] uint8, the up actions, the down actions)
GAME_PADDLES = {"atari/Pong": (pong.paddle_row, pong.UP_ACTIONS, pong.DOWN_ACTIONS)}


def paddle_response(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, key: jax.Array,
                    paddle_row: Callable, up: Sequence[int], down: Sequence[int]) -> jax.Array:
    """``obs [T, B, *obs_shape]``, ``action, first [T, B]`` (``T`` = :func:`window_length`) -> ``[3, T, B]``
    rows of the frames: per window row, the first three of ``MEASURES`` (NaN where a frame has no paddle). The held
    actions change nothing before row ``imag_context`` (imagined frame 1), so the third is 0 on the observed rows."""
    C, T = parts.config.imag_context, window_length(parts)
    chex.assert_shape([action, first], (T, obs.shape[1]))

    def rows(actions: jax.Array) -> jax.Array:
        frames, _ = open_loop_predictions(parts, wm_params, obs, actions, first, C, key)
        return paddle_row(postprocess(frames, parts.obs_dtype))  # [T, B]

    real = paddle_row(obs)
    held = jax.vmap(lambda a: rows(action.at[C - 1:].set(a)))(jnp.asarray([*up, *down]))  # [U + D, T, B]
    effect = held[len(up):].mean(0) - held[:len(up)].mean(0)
    return jnp.stack([jnp.abs(rows(action) - real), jnp.abs(real - real[C - 1]), effect])


def held_moves(row: np.ndarray, action: np.ndarray, first: np.ndarray, up: Sequence[int], down: Sequence[int],
               steps: int) -> np.ndarray:
    """``row, action, first [N, E]`` (the paddle's row in each frame, the action taken from it, whether it starts an
    episode) -> ``[steps, 3]``: per ``k`` (row ``k - 1``), the mean of ``row[t + k] - row[t]`` where the ``k`` actions
    from frame t on are all down actions, less the mean where they are all up actions (NaN without both), and how
    many rows held each (down, up); only where frames t+1 .. t+k stay in frame t's episode and rows t and t+k
    are read (not NaN)."""
    N = row.shape[0]
    out = np.full((steps, 3), np.nan)
    for k in range(1, steps + 1):
        same_episode = ~np.any(np.stack([first[j:N - k + j] for j in range(1, k + 1)]), 0)
        move = row[k:] - row[:N - k]
        means = []
        for kind in (down, up):
            held = np.all(np.stack([np.isin(action[j:N - k + j], kind) for j in range(k)]), 0)
            where = held & same_episode & ~np.isnan(move)
            means.append((move[where].mean() if where.any() else np.nan, int(where.sum())))
        out[k - 1] = (means[0][0] - means[1][0], means[0][1], means[1][1])
    return out


def make_paddle_response(parts: Parts, windows: dict, replay_rows: dict, paddle_row: Callable, up: Sequence[int],
                         down: Sequence[int], batch: int = 64) -> Callable[[Any, jax.Array], dict]:
    """``response(wm_params, key) -> {column: {measure: value}}`` on
    :func:`~ssmrl.agents.world_model.reward_events.replay_windows`' ``windows``: the means over windows of
    :func:`paddle_response` pooled over the observed rows (``observed``: the row error only) and at the imagined
    frames of :func:`~ssmrl.agents.world_model.reward_events.shown_frames`, with the replay's answer from
    ``replay_rows`` (``{obs [N, E, ...], action, first [N, E]}``, :func:`held_moves`) as the last measure and its
    counts under ``"replay rows held down, up"``. In batches of ``batch`` windows, compiled once for every call."""
    C = parts.config.imag_context
    shown = shown_frames(parts)
    moves = held_moves(np.asarray(paddle_row(replay_rows["obs"])), replay_rows["action"], replay_rows["first"], up,
                       down, max(shown, default=0))
    measure = jax.jit(lambda p, o, a, f, k: paddle_response(parts, p, o, a, f, k, paddle_row, up, down))

    def response(wm_params, key: jax.Array) -> dict:
        per_window = over_batches(measure, windows, batch, wm_params, key, 2)  # [3, T, N]
        table = {"observed": dict(zip(MEASURES, (float(np.nanmean(per_window[0, :C])), None, None, None)))}
        for k in shown:
            means = np.nanmean(per_window[:, C - 1 + k], -1)
            table[f"imagined {k}"] = {**dict(zip(MEASURES, (*means.tolist(), float(moves[k - 1, 0])))),
                                      "replay rows held down, up": (int(moves[k - 1, 1]), int(moves[k - 1, 2]))}
        return table

    return response


def format_paddle(table: dict) -> str:
    """:func:`make_paddle_response`'s table as Markdown: a row per measure, a column per window position."""
    lines = measure_rows("agent's paddle, rows of the frame", table, MEASURES, 2)
    held = [e.get("replay rows held down, up") for e in table.values()]
    lines.append("| replay rows held down / up | " + " | ".join("-" if h is None else f"{h[0]} / {h[1]}"
                                                                for h in held) + " |")
    return "\n".join(lines)
