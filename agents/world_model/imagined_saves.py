"""Does the world model let its actor save a point it foresees?

:mod:`~ssmrl.envs.atari.avoidable` measures on the emulator how many agent steps before a penalty (a lost point, a
punch taken) some held action still avoids it. An actor learns to avoid a penalty only where its model agrees, so
here the same question is put to the model's imagination, on the penalties of its own replay. For each penalised
row ``p`` (a reward below zero) and lead ``k``, a window of the replay is observed for ``imag_context`` frames and
imagined open-loop from there (:func:`~ssmrl.agents.world_model.agent.open_loop_predictions`, as the agent imagines)
so that the ``k``-th imagined step's action is ``p``'s: window position ``imag_context - 2 + k`` holds ``p``'s reward
(:mod:`~ssmrl.agents.world_model.reward_events`' convention). The ``k + tail`` imagined steps from the first are the
plan's, as on the emulator. With the recorded actions, the model **foresees** the penalty when some of those steps'
predicted rewards is below ``-threshold``; a held action (the same sampling key, held from the first imagined step)
**saves** it when none of its predicted rewards over those steps is. Leads whose steps cross an episode's start
are skipped, as on the emulator.

The other side, in Pong: at a ball the paddle returned (:mod:`~ssmrl.envs.atari.pong`), anchored at the row where
the point would have been paid, the same flags say whether the recorded actions' imagination loses the point the
paddle saved, and which held actions lose it; :func:`~ssmrl.envs.atari.avoidable.losable_returns` measures the
emulator's answer. A model whose game answers the paddle loses returns to held actions where the emulator does.
"""

from __future__ import annotations

from typing import Any, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import Parts, open_loop_predictions
from ssmrl.agents.world_model.reward_events import over_batches
from ssmrl.envs.atari import pong
from ssmrl.envs.atari.avoidable import share


def penalty_windows(replay: rb.Replay, context: int, leads: Sequence[int], tail: int, rows: tuple[int, int],
                    penalties: int) -> tuple[dict, np.ndarray]:
    """The windows of the first ``penalties`` penalised rows in ``rows = (lo, hi)`` (every env's, in row order) at
    each lead: :func:`lead_windows`'."""
    if penalties < 1:
        raise ValueError(f"penalties must be >= 1, got {penalties}")
    lo, hi = max(rows[0], 0), min(rows[1], int(replay.size))
    found = sorted((lo + row, env) for row, env in zip(*np.nonzero(np.asarray(replay.reward[lo:hi]) < 0)))
    return lead_windows(replay, context, leads, tail, found[:penalties], f"penalty in rows {lo}-{hi}")


def return_windows(replay: rb.Replay, context: int, leads: Sequence[int], tail: int, rows: tuple[int, int],
                   returns: int) -> tuple[dict, np.ndarray]:
    """The windows of the first ``returns`` balls Pong's paddle returned in ``rows = (lo, hi)`` (every env's, in
    row order, :func:`~ssmrl.envs.atari.pong.returns_in_frames`), each at the row where the point would have been
    paid had the paddle missed (the turn + :data:`~ssmrl.envs.atari.pong.PAID_AFTER`), at each lead:
    :func:`lead_windows`'."""
    if returns < 1:
        raise ValueError(f"returns must be >= 1, got {returns}")
    size = int(replay.size)
    lo, hi = max(rows[0], 0), min(rows[1], size)
    obs, reward, first = (np.asarray(getattr(replay, name)[:size]) for name in ("obs", "reward", "first"))
    found = sorted((int(row), env) for env in range(obs.shape[1])
                   for row in pong.returns_in_frames(obs[:, env], reward[:, env], first[:, env]) + pong.PAID_AFTER
                   if lo <= row < hi)
    return lead_windows(replay, context, leads, tail, found[:returns], f"Pong return in rows {lo}-{hi}")


def lead_windows(replay: rb.Replay, context: int, leads: Sequence[int], tail: int, anchors: Sequence[tuple[int, int]],
                 what: str) -> tuple[dict, np.ndarray]:
    """For each ``(row, env)`` in ``anchors`` and lead ``k``, the window whose ``k``-th imagined step's action is
    ``row``'s: ``({obs [T, N, *obs_shape], action, reward, first [T, N]}, lead [N])``, ``T = context - 1 +
    max(leads) + tail``, a window per (anchor, lead) that fits the replay and one episode; ``what`` names the
    anchors in the error where none has one."""
    if not leads or min(leads) < 1 or tail < 0:
        raise ValueError(f"leads must be non-empty and >= 1 and tail >= 0, got leads {list(leads)}, tail {tail}")
    size = int(replay.size)
    T = context - 1 + max(leads) + tail
    first = np.asarray(replay.first[:size])
    starts, envs, lead = [], [], []
    for p, env in anchors:
        for k in leads:
            start, end = p - (context - 2 + k), p + tail  # end: the plan's last row
            if start >= 0 and start + T <= size and not first[start + 1:end + 1, env].any():
                starts.append(start), envs.append(env), lead.append(k)
    if not starts:
        raise ValueError(f"no {what} of a {size}-row replay has a window of {T} rows at leads {list(leads)} within "
                         f"one episode")
    take = np.asarray(starts)[None, :] + np.arange(T)[:, None]  # [T, N]
    env = np.asarray(envs)[None, :]
    windows = {name: np.asarray(getattr(replay, name)[take, env]) for name in ("obs", "action", "reward", "first")}
    return windows, np.asarray(lead)


def imagined_saves(parts: Parts, wm_params: Any, obs: jax.Array, action: jax.Array, first: jax.Array,
                   lead: jax.Array, tail: int, threshold: float, key: jax.Array) -> jax.Array:
    """``obs [T, N, *obs_shape]``, ``action, first [T, N]``, ``lead [N]`` (:func:`lead_windows`) -> ``[2 + A, N]``
    booleans: whether the recorded actions' imagination foresees the penalty, whether some held action saves it, and
    whether each of the ``A`` actions held does."""
    C, A = parts.config.imag_context, parts.num_actions
    T, N = action.shape
    chex.assert_shape(obs, (T, N, *parts.obs_shape))
    chex.assert_shape(lead, (N,))
    position = jnp.arange(T)[:, None]
    plan = (position >= C - 1) & (position <= C - 2 + lead[None, :] + tail)  # [T, N]

    def penalised(actions: jax.Array) -> jax.Array:
        reward = parts.wm.reward_value(open_loop_predictions(parts, wm_params, obs, actions, first, C, key)[1])
        return jnp.any(plan & (reward < -threshold), axis=0)  # [N]

    held = jnp.arange(A)[:, None, None] * jnp.ones_like(action[C - 1:])
    saved = ~jax.vmap(lambda a: penalised(action.at[C - 1:].set(a)))(held)  # [A, N]
    return jnp.concatenate([penalised(action)[None], saved.any(0)[None], saved], 0)


def saves_flags(parts: Parts, wm_params: Any, windows: dict, lead: np.ndarray, tail: int = 4,
                threshold: float = 0.5, key: jax.Array | None = None, batch: int = 128) -> np.ndarray:
    """:func:`imagined_saves`' flags ``[2 + A, N]`` of :func:`lead_windows`' windows, in batches of ``batch``."""
    key = jax.random.PRNGKey(0) if key is None else key
    measure = jax.jit(lambda p, o, a, f, n, k: imagined_saves(parts, p, o, a, f, n[0], tail, threshold, k))
    return over_batches(measure, {**windows, "lead": lead[None]}, batch, wm_params, key, 1,
                        names=("obs", "action", "first", "lead"))


def shares_by_lead(flags: np.ndarray, lead: np.ndarray) -> list[dict]:
    """:func:`imagined_saves`' ``flags [2 + A, N]`` of penalties' windows at ``lead [N]`` -> per lead (ascending):
    ``{"lead", "penalties", "foreseen" (share of them), "saved" (share of the foreseen ones some held action saves;
    NaN where none is foreseen), "held" ([share of the foreseen ones each held action saves])}``."""
    rows = []
    for k in sorted(set(lead.tolist())):
        mine = flags[:, lead == k]
        seen = mine[1:, mine[0]]  # the foreseen penalties' saves: some action's, then each action's
        rows.append({"lead": k, "penalties": int(mine.shape[1]), "foreseen": float(mine[0].mean()),
                     "saved": share(seen[0]), "held": [share(s) for s in seen[1:]]})
    return rows


def losses_by_lead(flags: np.ndarray, lead: np.ndarray) -> list[dict]:
    """:func:`imagined_saves`' ``flags [2 + A, N]`` of returns' windows (:func:`return_windows`) at ``lead [N]`` ->
    per lead (ascending): ``{"lead", "returns", "foreseen" (the share whose recorded actions' imagination loses the
    point the paddle saved), "held_any" (the share some held action loses in imagination), "held" ([the share each
    held action loses]), "held_all" (the share every held action loses)}``."""
    rows = []
    for k in sorted(set(lead.tolist())):
        mine = flags[:, lead == k]
        rows.append({"lead": k, "returns": int(mine.shape[1]), "foreseen": share(mine[0]),
                     "held_any": share(~mine[2:].all(0)), "held": [share(~s) for s in mine[2:]],
                     "held_all": share(~mine[1])})
    return rows
