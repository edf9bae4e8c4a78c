"""Does the world model see the rewards of its replay?

An agent learns from the rewards its model predicts in imagination, so a model that predicts the mean reward
everywhere leaves its actor nothing to learn from but the critic's errors. Here windows of a replay are
replayed through the model as the agent's imagination sees them: ``imag_context`` frames are observed (the
last one starts imagination) and the rest imagined open-loop with the recorded actions. Window position
``imag_context - 2 + k`` then holds the reward of the ``k``-th imagined step (``k = 1``: the reward of the
start's own action, read from its posterior state, or with ``reward_input="next_state"`` from a prior sample after
it; ``k >= 2``: from prior samples), and earlier positions the rewards of observed steps, as the world model is
trained on them. Grouped by what the env paid (less than, equal to, more than zero), the mean predictions say
whether the model tells a step that paid from one that did not.

Imagination's later steps are built on its first latent, a sample of the prior after the last observed frame; a
second table (:func:`first_latent_agreement`) says how often that prior's most likely class is the real next
frame's, grouped by what imagined steps 1 and 2 were paid: a prior that misses the latents of the frames before a
reward drops the reward from every step after the first. A model trained with ``reward_ahead`` heads gets a third
table (:func:`ahead_by_outcome`): their predictions of the rewards 1 .. K steps later, read from the posterior pass's
state with the recorded actions between: what the state holds of a reward before the frame that decides it.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import Parts, open_loop_predictions
from ssmrl.agents.world_model.world_model import ahead_mask, later_rows

OUTCOMES = ("paid < 0", "paid 0", "paid > 0")


def window_length(parts: Parts) -> int:
    """Rows of a window: ``imag_context`` observed, then the rest of the ``horizon`` imagined steps."""
    return parts.config.imag_context + parts.config.horizon - 1


def replay_windows(replay: rb.Replay, length: int, first_row: int, count: int) -> dict:
    """``count`` windows of ``length`` rows spread evenly over rows ``[first_row, size - length]`` of every env
    of ``replay`` (fewer where fewer rows start one): ``{obs [T, N, *obs_shape], action, reward, first [T, N]}``,
    ``N = windows * num_envs``."""
    size = int(replay.size)
    if not 0 <= first_row <= size - length:
        raise ValueError(f"no window of {length} rows starts at row {first_row} of a replay of {size} rows")
    starts = np.unique(np.linspace(first_row, size - length, count).astype(int))
    rows = starts[None, :] + np.arange(length)[:, None]

    def gather(x):
        x = np.asarray(x[rows])  # [T, S, E, ...]
        return x.reshape(length, -1, *x.shape[3:])

    return {name: gather(getattr(replay, name)) for name in ("obs", "action", "reward", "first")}


def make_reward_events(parts: Parts, windows: dict, batch: int = 256) -> Callable[[Any, jax.Array], dict]:
    """``events(wm_params, key) -> {"rewards": by_outcome's table, "agreement": agreement_by_outcome's, "ahead":
    ahead_by_outcome's}`` on :func:`replay_windows`' ``windows`` (of :func:`window_length` rows): the reward head's mean
    prediction for each recorded action, the first ``imag_context`` observed, the rest imagined
    (:func:`~ssmrl.agents.world_model.agent.open_loop_predictions`); the first imagined latent's agreement with the
    next frame's posterior (:func:`first_latent_agreement`; left out with ``horizon=1``, whose windows end before
    that frame); the ``reward_ahead`` heads' predictions (:func:`ahead_predictions`; left out without them). In
    batches of ``batch`` windows (the last one padded); compiled once for every call."""
    C = parts.config.imag_context
    predict = jax.jit(lambda p, o, a, f, k: parts.wm.reward_value(open_loop_predictions(parts, p, o, a, f, C, k)[1]))
    agreement = jax.jit(lambda p, o, a, f, k: first_latent_agreement(parts, p, o, a, f, C, k))
    ahead = jax.jit(lambda p, o, a, f, k: ahead_predictions(parts, p, o, a, f, k))

    def events(wm_params, key: jax.Array) -> dict:
        k_predict, k_agree, k_ahead = jax.random.split(key, 3)
        predicted = over_batches(predict, windows, batch, wm_params, k_predict, 1)
        tables = {"rewards": by_outcome(parts, predicted, windows["reward"])}
        if parts.config.horizon >= 2:
            tables["agreement"] = agreement_by_outcome(
                parts, over_batches(agreement, windows, batch, wm_params, k_agree, 0), windows["reward"])
        if parts.config.reward_ahead:
            tables["ahead"] = ahead_by_outcome(over_batches(ahead, windows, batch, wm_params, k_ahead, 2),
                                               windows["reward"], windows["first"])
        return tables

    return events


def shown_frames(parts: Parts) -> list[int]:
    """The imagined frames a table shows: 1, 2, half the horizon and ``horizon - 1``, the last in a window (the
    window's last action leads out of it); none with a horizon of 1, whose windows end before the first."""
    H = parts.config.horizon
    return sorted({1, min(2, H - 1), max(1, H // 2), H - 1}) if H >= 2 else []


def over_batches(fn: Callable, windows: dict, batch: int, wm_params, key: jax.Array, axis: int,
                 names: tuple[str, ...] = ("obs", "action", "first")) -> np.ndarray:
    """``fn(wm_params, *windows[names], key)`` (by default ``obs, action, first``) over :func:`replay_windows`'
    windows (axis 1 of each input) in batches of ``batch`` (the last one padded with the last window, each batch its
    own key), its outputs joined along ``axis`` (the windows') without the padding."""
    N = windows["action"].shape[1]
    batches = [np.minimum(np.arange(i, i + batch), N - 1) for i in range(0, N, batch)]
    out = [np.asarray(fn(wm_params, *(windows[n][:, take] for n in names), k))
           for take, k in zip(batches, jax.random.split(key, len(batches)))]
    return np.take(np.concatenate(out, axis), np.arange(N), axis)


def ahead_predictions(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, key: jax.Array
                      ) -> jax.Array:
    """The ``reward_ahead`` heads' predicted rewards ``[K, T, B]`` (row ``k - 1``: ``r_{t+k}`` from ``h_t`` and the
    recorded actions between) over the posterior pass of windows ``obs [T, B, *obs_shape]``, ``action, first
    [T, B]``."""
    T, B = action.shape
    chex.assert_shape(obs, (T, B, *parts.obs_shape))
    wm = parts.wm
    _, out = wm.apply(wm_params, wm.initialize_carry(B), obs, action, first, jax.random.split(key, T),
                      method="observe")
    return wm.reward_value(wm.apply(wm_params, out["h"], action, method="rewards_ahead"))


def ahead_by_outcome(predicted: np.ndarray, paid: np.ndarray, first: np.ndarray) -> dict:
    """``predicted [K, T, N]`` (:func:`ahead_predictions`), ``paid, first [T, N]`` -> ``{"ahead k": column}``: each
    head's predictions against the rewards paid ``k`` steps later, pooled over the positions where that reward is
    in the window and the episode (:func:`~ssmrl.agents.world_model.world_model.ahead_mask`; :func:`outcome_entry`)."""
    K = predicted.shape[0]
    mask = np.asarray(ahead_mask(jnp.asarray(first), K)) > 0
    later = np.asarray(later_rows(jnp.asarray(paid), K))  # r_{t+k}
    return {f"ahead {k}": outcome_entry(predicted[k - 1][mask[k - 1]], later[k - 1][mask[k - 1]])
            for k in range(1, K + 1)}


def first_latent_agreement(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array,
                           context: int, key: jax.Array) -> jax.Array:
    """The share of latent groups ``[B]`` in which the prior after the first ``context`` frames (what imagination
    samples its first latent from) puts its most likely class where the posterior of the real frame ``context``
    does; ``obs [T, B, *obs_shape]``, ``action, first [T, B]``, ``T > context``."""
    T, B = action.shape
    chex.assert_shape(obs, (T, B, *parts.obs_shape))
    if T <= context:
        raise ValueError(f"windows of {T} rows hold no frame after a context of {context}")
    wm = parts.wm
    _, out = wm.apply(wm_params, wm.initialize_carry(B), obs[:context + 1], action[:context + 1],
                      first[:context + 1], jax.random.split(key, context + 1), method="observe")
    # out["prior"][t] is read from h_t, causal: the prior a context of frames 0..context-1 gives
    agree = jnp.argmax(out["prior"][context - 1], -1) == jnp.argmax(out["post"][context], -1)  # [B, G]
    return jnp.mean(agree, -1)


def agreement_by_outcome(parts: Parts, agreement: np.ndarray, paid: np.ndarray) -> dict:
    """``agreement [N]`` (:func:`first_latent_agreement`), ``paid [T, N]`` -> ``{"imagined k": {outcome: (windows,
    mean agreement), "correlation": r}}`` grouped by what imagined step ``k`` (1 and 2) was paid
    (:func:`outcome_entry`)."""
    C = parts.config.imag_context
    return {f"imagined {k}": outcome_entry(agreement, paid[C - 2 + k]) for k in (1, 2)}


def by_outcome(parts: Parts, predicted: np.ndarray, paid: np.ndarray) -> dict:
    """``predicted, paid [T, N]`` -> ``{column: {outcome: (steps, mean prediction), "correlation": r}}`` with
    columns ``observed`` (the steps before imagination starts, pooled) and ``imagined k`` for ``k`` in 1, 2,
    half the horizon, the horizon and, for a model with ``reward_ahead`` heads, every step up to ``reward_ahead + 1``
    (the steps those heads ask the state to foresee; :func:`outcome_entry`)."""
    C, H, K = parts.config.imag_context, parts.config.horizon, parts.config.reward_ahead
    columns = {"observed": np.arange(0, C - 1)}
    for k in sorted({min(2, H), max(1, H // 2), H, *range(1, min(H, K + 1) + 1)}):  # the range holds step 1
        columns[f"imagined {k}"] = np.asarray([C - 2 + k])
    return {name: outcome_entry(predicted[rows].ravel(), paid[rows].ravel()) for name, rows in columns.items()}


def outcome_entry(predicted: np.ndarray, paid: np.ndarray) -> dict:
    """``predicted, paid [K]`` -> one column of the table: ``{outcome: (steps, mean prediction), "correlation": r}``,
    a mean None where no step had that outcome, the correlation None where either is constant."""
    entry = {}
    for outcome, mask in zip(OUTCOMES, (paid < 0, paid == 0, paid > 0)):
        entry[outcome] = (int(mask.sum()), float(predicted[mask].mean()) if mask.any() else None)
    varies = predicted.std() > 0 and paid.std() > 0
    entry["correlation"] = float(np.corrcoef(predicted, paid)[0, 1]) if varies else None
    return entry


def signed(x: float | None) -> str:
    """A mean or correlation of the table as printed: ``+0.123``, ``-`` for None."""
    return "-" if x is None else f"{x:+.3f}"


def format_table(table: dict, measure: str = "mean prediction (steps)") -> str:
    """``by_outcome``'s table as Markdown: a row per outcome (the mean ``measure`` names, its count) and the
    correlation."""
    lines = ["| paid by the env | " + " | ".join(table) + " |", "|---" * (len(table) + 1) + "|"]
    for outcome in OUTCOMES:
        cells = [f"{signed(e[outcome][1])} ({e[outcome][0]})" for e in table.values()]
        lines.append(f"| {outcome}: {measure} | " + " | ".join(cells) + " |")
    lines.append("| correlation | " + " | ".join(signed(e["correlation"]) for e in table.values()) + " |")
    return "\n".join(lines)


def measure_rows(title: str, table: dict, measures, digits: int) -> list[str]:
    """Markdown lines of a ``{column: {measure: value or None}}`` table: its header (``title`` in the first cell, a
    column per window position) and a row per measure in ``measures``, each value to ``digits`` decimals, ``-`` for
    None."""
    lines = [f"| {title} | " + " | ".join(table) + " |", "|---" * (len(table) + 1) + "|"]
    for name in measures:
        lines.append(f"| {name} | " + " | ".join("-" if e[name] is None else f"{e[name]:.{digits}f}"
                                                  for e in table.values()) + " |")
    return lines
