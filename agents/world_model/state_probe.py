"""Does the world model's state hold what a frame shows? A linear probe.

Imagination samples each latent from the prior and decodes it: it can foresee only what those latents encode. On
Pong, imagination draws the agent's paddle as a smear down its column (docs/RESULTS.md); whether the fault is in
the dynamics or already in the frame's own latent is told apart here. A quantity read from each real frame (Pong:
the agent's paddle's row, :func:`~ssmrl.envs.atari.pong.paddle_row`) is regressed linearly (ridge) on each of the
model's features of that frame, over the posterior pass of the replay's rows:

* **posterior of z_t**: the latent's class probabilities given the frame itself ``[G * C]``: what the decoder and
  the prior's target see;
* **prior of z_t**: the prior's class probabilities from ``h_{t-1}``, before the frame: what one imagined step
  foresees of it;
* **h_{t-1}**: the sequence model's output before the frame ``[H]``.

Each probe is fitted on the rows the model was trained on and scored on later rows it never saw: the held-out
rows' mean absolute error (in the quantity's units: rows of the frame) and ``R^2``. Beside them: a constant (the
fitted rows' mean) and the quantity one frame earlier (what a model that leaves the paddle where it was gets).
The ridge penalty is picked per feature from :data:`PENALTIES` on the fitted rows' last fifth.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import Parts
from ssmrl.agents.world_model.reward_events import over_batches, replay_windows

FEATURES = ("posterior of z_t", "prior of z_t", "h_{t-1}")
REFERENCES = ("constant (the fitted rows' mean)", "the frame before's value")
PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # times the features' mean variance
WINDOW, WARMUP = 64, 8  # a probed row follows at least WARMUP rows of its window: context, unless an episode starts


def state_features(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, key: jax.Array
                   ) -> jax.Array:
    """``obs [T, B, *obs_shape]``, ``action, first [T, B]`` -> ``[T, B, 2 G C + H]``: per frame, the posterior's and
    the prior's class probabilities of ``z_t`` and ``h_{t-1}`` (:data:`FEATURES`, joined in that order) of the
    posterior pass from a fresh carry. The prior of a window's first frame, or an episode's, is read from a state that
    has seen nothing of the episode."""
    T, B = action.shape
    chex.assert_shape(obs, (T, B, *parts.obs_shape))
    wm = parts.wm
    _, out = wm.apply(wm_params, wm.initialize_carry(B), obs, action, first, jax.random.split(key, T),
                      method="observe")
    # out["prior"][t] is read from h_t: frame t+1's prior; frame 0's comes from the fresh carry's h
    first_prior = wm.apply(wm_params, out["h_prev"][:1], method="prior")
    prior = jnp.concatenate([first_prior, out["prior"][:-1]], 0)
    post, prior = (jax.nn.softmax(logits, -1).reshape(T, B, -1) for logits in (out["post"], prior))
    return jnp.concatenate([post, prior, out["h_prev"]], -1)


def probe_windows(replay: rb.Replay, start: int, stop: int, length: int = WINDOW) -> dict:
    """:func:`~ssmrl.agents.world_model.reward_events.replay_windows` of ``length`` rows over replay rows
    ``[start, stop)`` of every env, starting at most ``length - WARMUP`` rows apart, so that the rows after each
    window's first ``WARMUP`` cover every row from ``start + WARMUP`` on (a few twice, where the starts round)."""
    if not WARMUP < length <= stop - start:
        raise ValueError(f"rows {start}-{stop} hold no {length}-row window with rows after its first {WARMUP} to "
                         "probe")
    count = -(-(stop - start - length) // (length - WARMUP)) + 1
    return replay_windows(replay.replace(size=jnp.asarray(stop, jnp.int32)), length, start, count)


def ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    """Least squares of ``y [N]`` on ``x [N, D]`` with an intercept and an L2 penalty ``penalty`` times the
    features' mean variance times ``N`` -> ``(weights [D], intercept)``."""
    mean_x, mean_y = x.mean(0), y.mean()
    xc = x - mean_x
    gram = xc.T @ xc
    scale = penalty * max(float(np.trace(gram)) / x.shape[1], 1e-12)
    w = np.linalg.solve(gram + scale * np.eye(x.shape[1]), xc.T @ (y - mean_y))
    return w, float(mean_y - mean_x @ w)


def fit_probe(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`ridge` with the penalty of :data:`PENALTIES` whose fit on the first four fifths of the rows has the
    least squared error on the last fifth, refitted on all of them."""
    cut = int(0.8 * len(y))

    def held_out_error(penalty):
        w, b = ridge(x[:cut], y[:cut], penalty)
        return np.mean((x[cut:] @ w + b - y[cut:]) ** 2)

    return ridge(x, y, min(PENALTIES, key=held_out_error))


def probe_scores(fitted: tuple[np.ndarray, np.ndarray], scored: tuple[np.ndarray, np.ndarray]) -> dict:
    """``(x [N, D], y [N])`` of the fitted rows and of the scored rows -> ``{"error": mean |prediction - y|,
    "r2": 1 - squared error / y's variance}`` on the scored rows."""
    w, b = fit_probe(*fitted)
    x, y = scored
    return prediction_scores(x @ w + b, y)


def prediction_scores(predicted: np.ndarray, y: np.ndarray) -> dict:
    """``predicted, y [N]`` -> ``{"error": mean |predicted - y|, "r2": 1 - squared error / y's variance}``."""
    return {"error": float(np.mean(np.abs(predicted - y))),
            "r2": float(1.0 - np.mean((predicted - y) ** 2) / max(float(np.var(y)), 1e-12))}


def _probed_values(windows: dict, target: Callable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probed rows of windows: ``(which [T - WARMUP, B] bool, value [N], the frame before's value [N])``: rows
    after each window's ``WARMUP`` with a value there, NaN for the frame before where it starts an episode."""
    value = np.asarray(target(windows["obs"]), np.float64)  # [T, B]
    before = np.where(windows["first"][1:], np.nan, value[:-1])
    keep = ~np.isnan(value[WARMUP:])
    return keep, value[WARMUP:][keep], before[WARMUP - 1:][keep]


def make_state_probe(parts: Parts, fitted_windows: dict, scored_windows: dict, target: Callable, batch: int = 32
                     ) -> Callable[[Any, jax.Array], dict]:
    """``probe(wm_params, key) -> {row: {"error", "r2"}}`` for each of :data:`FEATURES` and :data:`REFERENCES`:
    probes of ``target(frames [..., *obs_shape]) -> [...]`` fitted on :func:`probe_windows`' ``fitted_windows`` and
    scored on ``scored_windows``; the features in batches of ``batch`` windows, compiled once for every call. The
    values, and the references read from them alone, are computed here once."""
    features = jax.jit(lambda p, o, a, f, k: state_features(parts, p, o, a, f, k))
    L = parts.config.latent_groups * parts.config.latent_classes
    spans = dict(zip(FEATURES, (slice(0, L), slice(L, 2 * L), slice(2 * L, None))))
    fit_keep, fit_y, _ = _probed_values(fitted_windows, target)
    keep, y, before = _probed_values(scored_windows, target)
    seen = ~np.isnan(before)
    references = {REFERENCES[0]: prediction_scores(np.full_like(y, fit_y.mean()), y),
                  REFERENCES[1]: prediction_scores(before[seen], y[seen])}

    def probe(wm_params, key: jax.Array) -> dict:
        k_fit, k_score = jax.random.split(key)
        fit_x = over_batches(features, fitted_windows, batch, wm_params, k_fit, 1)[WARMUP:][fit_keep]
        x = over_batches(features, scored_windows, batch, wm_params, k_score, 1)[WARMUP:][keep]
        return {**{name: probe_scores((fit_x[:, span], fit_y), (x[:, span], y)) for name, span in spans.items()},
                **references}

    return probe


def format_probe(tables: dict[str, dict], unit: str) -> str:
    """``{column: make_state_probe's table}`` (e.g. the model's and an untrained one's) as Markdown: a row per
    feature, the held-out error (in ``unit``) and ``R^2`` per column."""
    columns = list(tables)
    lines = ["| read linearly from | " + " | ".join(f"{c}: error ({unit}) / R^2" for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name in (*FEATURES, *REFERENCES):
        lines.append(f"| {name} | " + " | ".join(f"{tables[c][name]['error']:.2f} / {tables[c][name]['r2']:+.3f}"
                                                for c in columns) + " |")
    return "\n".join(lines)
