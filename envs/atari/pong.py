"""Where Pong's ball is, and when the agent's paddle returns it, in the emulator's RAM and in the agent's frames.

A lost point only says the agent missed; the rallies it survived are the other half of what a world model of Pong
must learn, and nothing in the reward marks them. Both readers below find a **return**: the agent step at which the
ball, having travelled right towards the agent's paddle (the right-hand one), is furthest right before it travels
back. Had the paddle missed it there, the point would have been paid :data:`PAID_AFTER` agent steps later, so
``turn + PAID_AFTER`` is the row a return is compared at with a lost point.

* RAM (the emulator, ``ale.getRAM()``): byte :data:`BALL_X_RAM` holds the ball's x, growing to the right; the
  paddle turns it back at about 186 and a missed ball runs on to 205.
* Frames (the Atari100k protocol's 64x64 RGB, :mod:`~ssmrl.envs.atari.env`): the playing field is rows 11-58, the
  paddles stand in columns 6-7 (the opponent's, orange) and 56-57 (the agent's, green), and every other pixel of the
  field that is not the background colour is the ball's.

:func:`object_masks` gives each of the three objects' pixels in a frame, and the region it moves in, for measures of
what a world model draws of them (:mod:`~ssmrl.agents.world_model.drawn_objects`); :func:`paddle_row` where the
agent's paddle stands, for whether a world model moves it as the actions do
(:mod:`~ssmrl.agents.world_model.paddle_response`): in the minimal action set, RIGHT and RIGHTFIRE move it up,
LEFT and LEFTFIRE down (on the emulator, held from rest: 2.4-3 rows of a 64x64 frame in the first agent step,
then about 6.7 per step).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

BALL_X_RAM = 49
PAID_AFTER = 4  # agent steps from the ball's last frame at the agent's paddle to a lost point's reward
# the paddle turns the ball back at 186-187; the opponent's are far left, and a missed ball's last x (205) turns
# only to the next episode's
_RAM_TURN_X = (180, 195)
FIELD_ROWS, BALL_COLUMNS = slice(11, 59), slice(8, 56)
OPPONENT_COLUMNS, AGENT_COLUMNS = slice(6, 8), slice(56, 58)
BACKGROUND = (144, 72, 17)
UP_ACTIONS, DOWN_ACTIONS = (2, 4), (3, 5)  # indices in the minimal action set: RIGHT(FIRE), LEFT(FIRE)
_FRAME_HALF = 40  # a return is counted when the ball, coming back, crosses this column
_FRAME_LOOKBACK = 20  # agent steps before that crossing searched for the turn
_FRAME_TURN_X = 50  # the paddle turns the ball at column 54-55; a serve comes from the middle


def returns_in_ram(ball_x: np.ndarray) -> np.ndarray:
    """``ball_x [T]`` (RAM byte :data:`BALL_X_RAM` after each agent step) -> the rows where the ball turns back
    from the agent's paddle: moving right into the row, left out of it, at an x of 180-195."""
    x = np.asarray(ball_x, np.int64)
    into, out_of, at = np.diff(x)[:-1], np.diff(x)[1:], x[1:-1]
    lo, hi = _RAM_TURN_X
    return np.flatnonzero((into > 0) & (out_of < 0) & (at >= lo) & (at <= hi)) + 1


def ball_x_in_frames(obs: np.ndarray) -> np.ndarray:
    """``obs [T, 64, 64, 3]`` uint8 -> the ball's column ``[T]`` (the mean of its pixels' columns), NaN where it is
    not on the field between the paddles."""
    field = obs[:, FIELD_ROWS, BALL_COLUMNS].astype(np.int16)
    ball = np.any(field != np.asarray(BACKGROUND, np.int16), axis=-1)  # [T, rows, columns]
    columns = ball.sum(1)  # [T, columns]
    count = columns.sum(1)
    mean = (columns * np.arange(columns.shape[1])).sum(1) / np.maximum(count, 1) + BALL_COLUMNS.start
    return np.where(count > 0, mean, np.nan)


def returns_in_frames(obs: np.ndarray, reward: np.ndarray, first: np.ndarray) -> np.ndarray:
    """One env's frames ``obs [T, 64, 64, 3]``, ``reward, first [T]`` -> the rows of its returns. The ball, seen
    last at or right of column 40 and next left of it, was returned if, in the 20 rows before within the same point
    (a reward or an episode's start ends one; frames without the ball carry the last column seen), it was at column
    50 or further right: the return's row is where it was furthest right."""
    x = ball_x_in_frames(obs)
    turns, seen, since = [], np.nan, 0
    for t in range(len(x)):
        if reward[t] != 0 or first[t]:
            seen, since = np.nan, t
        if np.isnan(x[t]):
            continue
        if seen >= _FRAME_HALF > x[t]:
            lo = max(since, t - _FRAME_LOOKBACK)
            turn = lo + int(np.nanargmax(x[lo:t + 1]))
            if x[turn] >= _FRAME_TURN_X:
                turns.append(turn)
        seen = x[t]
    return np.asarray(turns, np.int64)


def _region(columns: slice) -> np.ndarray:
    region = np.zeros((64, 64), bool)
    region[FIELD_ROWS, columns] = True
    return region


REGIONS = {"ball": _region(BALL_COLUMNS), "agent's paddle": _region(AGENT_COLUMNS),
           "opponent's paddle": _region(OPPONENT_COLUMNS)}


def object_masks(obs):
    """``obs [..., 64, 64, 3]`` uint8 (a numpy or a jax array) -> ``{object: (region [64, 64], pixels [..., 64,
    64])}``: where on the field each object moves, and its pixels in each frame: the ball's, those of the field
    between the paddles not of the background colour; the agent's paddle's, the green ones (green above red) in its
    columns; the opponent's, those not of the background colour in its columns."""
    off_background = (obs != np.asarray(BACKGROUND, np.uint8)).any(-1)
    green = obs[..., 1] > obs[..., 0]
    return {"ball": (REGIONS["ball"], off_background & REGIONS["ball"]),
            "agent's paddle": (REGIONS["agent's paddle"], green & REGIONS["agent's paddle"]),
            "opponent's paddle": (REGIONS["opponent's paddle"], off_background & REGIONS["opponent's paddle"])}


def paddle_row(frames):
    """``frames [..., 64, 64, 3]`` uint8 (numpy or jax) -> ``[...]`` float32: the row of the agent's paddle, the mean
    of its columns' field rows weighted by each pixel's distance from the background (summed over the colour
    channels), NaN where they are all background. Weighted rather than masked so that a model's blurred frame reads
    where its paddle's mass is: a paddle smeared down its column reads near the column's middle."""
    strip = jnp.asarray(frames)[..., FIELD_ROWS, AGENT_COLUMNS, :].astype(jnp.float32)
    weight = jnp.abs(strip - jnp.asarray(BACKGROUND, jnp.float32)).sum((-1, -2))  # [..., rows]
    rows = jnp.arange(FIELD_ROWS.start, FIELD_ROWS.stop, dtype=jnp.float32)
    total = weight.sum(-1)
    return jnp.where(total > 0, (weight * rows).sum(-1) / jnp.where(total > 0, total, 1.0), jnp.nan)
