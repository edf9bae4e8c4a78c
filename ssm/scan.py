"""The reset-aware linear recurrence, written once for every linear-recurrent layer.

Every diagonal SSM (S5, S4D, Mamba, Mamba-2) reduces to

    h_t = (reset_t ? 0 : a_t * h_{t-1}) + b_t

over elements ``(a_t, b_t, reset_t)``. Combining an earlier element ``(a_i, b_i, d_i)`` with a later
one ``(a_j, b_j, d_j)`` gives ``(d_j ? a_j : a_j a_i, d_j ? b_j : a_j b_i + b_j, d_i or d_j)``; the
operator is associative, so the same recurrence runs as ``lax.associative_scan`` (log-depth, good on
GPUs) or as a sequential ``lax.scan`` (fewer flops, faster on CPUs). The carry from before the
sequence enters as an extra first element with ``d = True``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

ScanMethod = Literal["auto", "associative", "sequential"]
SCAN_METHODS = ("auto", "associative", "sequential")


def reset_operator(earlier: tuple, later: tuple) -> tuple:
    """Associative combine of two reset-aware recurrence elements ``(a, b, d)``."""
    a_i, b_i, d_i = earlier
    a_j, b_j, d_j = later
    a = jnp.where(d_j, a_j, a_j * a_i)
    b = jnp.where(d_j, b_j, a_j * b_i + b_j)
    return a, b, jnp.logical_or(d_i, d_j)


def resolve_method(method: ScanMethod) -> str:
    """``auto`` picks the sequential scan on CPU and the associative scan elsewhere (bench/scan.py)."""
    if method not in SCAN_METHODS:
        raise ValueError(f"unknown scan method {method!r}; valid: {list(SCAN_METHODS)}")
    if method == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "associative"
    return method


def _broadcast_resets(resets: jax.Array, like: jax.Array) -> jax.Array:
    return jnp.reshape(resets, resets.shape + (1,) * (like.ndim - resets.ndim))


def linear_recurrence(
    a: jax.Array,
    b: jax.Array,
    resets: jax.Array,
    h0: jax.Array,
    method: ScanMethod = "auto",
) -> tuple[jax.Array, jax.Array]:
    """Run ``h_t = (resets_t ? 0 : a_t * h_{t-1}) + b_t`` from ``h_{-1} = h0``.

    Args:
      a: decay, broadcastable to ``b`` (e.g. ``[P]`` for a time-invariant SSM or ``[T, B, ...]``).
      b: input ``[T, B, ...]``.
      resets: ``[T, B]`` bool, True where step t starts a new episode.
      h0: carry entering step 0, ``[B, ...]``.
    Returns:
      ``(h_last [B, ...], h [T, B, ...])``.
    """
    a = jnp.broadcast_to(a, b.shape).astype(b.dtype)
    d = _broadcast_resets(resets.astype(bool), b)
    if resolve_method(method) == "sequential":

        def step(h, elem):
            a_t, b_t, d_t = elem
            h = jnp.where(d_t, b_t, a_t * h + b_t)
            return h, h

        h_last, hs = jax.lax.scan(step, h0.astype(b.dtype), (a, b, d))
        return h_last, hs

    a_all = jnp.concatenate([jnp.ones_like(a[:1]), a], axis=0)
    b_all = jnp.concatenate([h0[None].astype(b.dtype), b], axis=0)
    d_all = jnp.concatenate([jnp.ones_like(d[:1]), d], axis=0)
    d_all = jnp.broadcast_to(d_all, b_all.shape)
    _, hs, _ = jax.lax.associative_scan(reset_operator, (a_all, b_all, d_all), axis=0)
    return hs[-1], hs[1:]


def linear_step(a: jax.Array, b: jax.Array, reset: jax.Array, h: jax.Array) -> jax.Array:
    """One step of the same recurrence: ``a, b, h [B, ...]`` (a broadcastable), ``reset [B]``."""
    return jnp.where(_broadcast_resets(reset.astype(bool), b), b, a * h + b)


def reset_carry(carry, reset: jax.Array, initial):
    """Replace the carry of every batch row whose ``reset [B]`` is True by ``initial`` (same pytree)."""

    def pick(c, c0):
        return jnp.where(_broadcast_resets(reset.astype(bool), c), c0, c)

    return jax.tree_util.tree_map(pick, carry, initial)
