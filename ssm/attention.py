"""Causal softmax attention over a bounded window that never crosses an episode start.

The keys a query may see are the ``memory`` carried keys of earlier steps followed by the ``T`` keys of
the current sequence. Episodes are numbered by the running count of resets, ``seg_t = Σ_{s<=t} resets_s``;
carried keys belong to episode 0 of the window and are masked when they are stale (``valid``). Query
``t`` sees key ``j`` iff ``0 <= t - j <= memory`` (in window positions), ``seg_j == seg_t`` and ``valid_j``.
Every query sees itself, so no softmax row is empty. A learned bias per head and distance
``t - j`` (``[heads, memory + 1]``) gives the only positional signal, the same in every mode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def head_dim(features: int, num_heads: int) -> int:
    """Width of each of ``num_heads`` heads splitting ``features``; raises if they do not divide evenly."""
    if num_heads < 1 or features % num_heads:
        raise ValueError(f"features ({features}) must be divisible by num_heads ({num_heads})")
    return features // num_heads


def window_mask(resets: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``resets [T, B]``, carried ``valid [B, M]`` -> ``(mask [B, T, M+T], distance [T, M+T], valid' [B, M])``.

    ``valid'`` marks which of the last ``M`` window positions still belong to the episode running at the
    end of the sequence: the carried keys' validity for the next call.
    """
    t, m = resets.shape[0], valid.shape[1]
    seg = jnp.cumsum(resets.astype(jnp.int32), axis=0).T  # [B, T]
    seg_all = jnp.concatenate([jnp.zeros((seg.shape[0], m), seg.dtype), seg], axis=1)  # [B, M+T]
    valid_all = jnp.concatenate([valid, jnp.ones_like(seg, bool)], axis=1)
    distance = (m + jnp.arange(t))[:, None] - jnp.arange(m + t)[None, :]  # [T, M+T]
    in_window = (distance >= 0) & (distance <= m)
    mask = in_window[None] & valid_all[:, None, :] & (seg_all[:, None, :] == seg[:, :, None])
    next_valid = valid_all[:, t:] & (seg_all[:, t:] == seg[:, -1:])
    return mask, distance, next_valid


def windowed_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, bias: jax.Array) -> jax.Array:
    """``q [T, B, heads, d]``, ``k, v [M+T, B, heads, d]``, ``mask [B, T, M+T]``, ``bias [heads, T, M+T]``
    -> ``weights [B, heads, T, M+T]`` (softmax over allowed keys)."""
    scores = jnp.einsum("tbhd,sbhd->bhts", q, k) / jnp.sqrt(jnp.float32(q.shape[-1])) + bias[None]
    scores = jnp.where(mask[:, None], scores, jnp.finfo(scores.dtype).min)
    return jax.nn.softmax(scores, axis=-1)
