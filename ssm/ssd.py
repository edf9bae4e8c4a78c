"""State-space duality (SSD, Dao & Gu 2024): the Mamba-2 recurrence, chunked, with episode resets.

Per batch row and head, with a scalar log-decay ``l_t = Δ_t A <= 0`` and ``a_t = exp(l_t)``:

    h_t = a_t h_{t-1} + Δ_t x_t ⊗ B_t        h [P, N], x [P], B, C [N]
    y_t = h_t C_t

and ``h_t`` restarts from 0 at a reset. Unrolled, ``y_t = sum_{s<=t} (C_t·B_s) exp(S[t,s]) Δ_s x_s``
with the segment sum ``S[t,s] = l_{s+1} + ... + l_t``: a causal, decay-masked "attention" matrix. The
chunked algorithm cuts time into chunks of ``Q`` steps and

1. within a chunk uses that quadratic masked form (matmuls, ``O(Q^2)`` per chunk), where a reset at
   ``u`` removes every ``(t, s)`` pair with ``s < u <= t``;
2. summarises each chunk by the state its own inputs leave at its end (same mask, ``t = Q-1``) and
   its total decay, then runs the linear recurrence over chunks (``ssm.scan.linear_recurrence``; a
   chunk holding a reset does not inherit the previous state); the incoming carry ``h0`` is the
   state entering chunk 0;
3. adds the contribution of the state entering each chunk, ``exp(l_0 + ... + l_t) C_t h_in``, for
   the steps before the chunk's first reset.

Sequences are padded to a multiple of ``Q`` with ``Δ = 0`` (decay 1, no input), which leaves the
state unchanged. :func:`ssd_recurrence` is the plain per-step recurrence, for checks and comparison.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssmrl.ssm.scan import ScanMethod, linear_recurrence


def segsum(log_a: jax.Array) -> jax.Array:
    """``S[..., t, s] = log_a[..., s+1] + ... + log_a[..., t]`` for ``t >= s`` (0 on the diagonal).

    Computed as a cumulative sum of a masked ``[Q, Q]`` matrix instead of ``cs[t] - cs[s]``: that
    difference of two large cumulative sums would lose precision for strong decays. Entries above
    the diagonal are meaningless (mask them).
    """
    q = log_a.shape[-1]
    mat = jnp.broadcast_to(log_a[..., :, None], log_a.shape + (q,))  # [..., u, s] = l_u
    strictly_lower = jnp.tril(jnp.ones((q, q), bool), -1)
    mat = jnp.where(strictly_lower, mat, 0.0)  # keep l_u for u > s
    return jnp.cumsum(mat, axis=-2)  # sum over u <= t


def ssd_chunked(
    x: jax.Array,
    dt: jax.Array,
    a: jax.Array,
    b: jax.Array,
    c: jax.Array,
    resets: jax.Array,
    h0: jax.Array,
    chunk_size: int = 64,
    method: ScanMethod = "auto",
) -> tuple[jax.Array, jax.Array]:
    """Chunked SSD scan.

    Args:
      x: ``[T, B, H, P]`` inputs per head.
      dt: ``[T, B, H]`` positive step sizes.
      a: ``[H]`` negative continuous decay rates (``a_t = exp(dt_t a)``).
      b, c: ``[T, B, N]`` input and output matrices (shared by all heads).
      resets: ``[T, B]`` bool, True where step t starts from the zero state.
      h0: ``[B, H, P, N]`` state entering step 0.
      chunk_size: ``Q`` (clipped to ``T``).
      method: how the recurrence over chunks runs (see :mod:`ssm.scan`).
    Returns:
      ``(h_last [B, H, P, N], y [T, B, H, P])`` (no ``D`` skip term).
    """
    t_len = x.shape[0]
    q = max(1, min(chunk_size, t_len))
    n_chunks = -(-t_len // q)
    pad = n_chunks * q - t_len
    if pad:
        def padded(v):
            return jnp.pad(v, [(0, pad)] + [(0, 0)] * (v.ndim - 1))

        x, dt, b, c, resets = map(padded, (x, dt, b, c, resets))

    def chunked(v):  # [T, ...] -> [chunks, Q, ...]
        return v.reshape((n_chunks, q) + v.shape[1:])

    x, dt, b, c = map(chunked, (x, dt, b, c))
    resets = chunked(resets.astype(jnp.int32))

    log_a = dt * a  # [c, Q, B, H]
    xdt = x * dt[..., None]  # [c, Q, B, H, P]
    cum = jnp.cumsum(log_a, axis=1)  # decay from the chunk start through step t (inclusive)
    n_resets = jnp.cumsum(resets, axis=1)  # [c, Q, B]: resets so far in the chunk

    # 1. intra-chunk: L[t, s] = exp(S[t, s]) where s <= t and no reset lies in (s, t]
    seg = segsum(jnp.moveaxis(log_a, 1, -1))  # [c, B, H, Q(t), Q(s)]
    rc = jnp.moveaxis(n_resets, 1, -1)  # [c, B, Q]
    causal = jnp.tril(jnp.ones((q, q), bool))
    visible = causal & (rc[..., :, None] == rc[..., None, :])  # [c, B, Q, Q]
    decay = jnp.exp(jnp.where(visible[:, :, None], seg, -jnp.inf))  # [c, B, H, Q, Q]
    scores = jnp.einsum("ctbn,csbn->cbts", c, b)  # C_t · B_s
    y_diag = jnp.einsum("cbhts,csbhp->ctbhp", decay * scores[:, :, None], xdt)

    # 2. chunk-end states from each chunk's own inputs, then the recurrence over chunks
    states = jnp.einsum("cbhs,csbhp,csbn->cbhpn", decay[..., -1, :], xdt, b)  # [c, B, H, P, N]
    chunk_decay = jnp.exp(cum[:, -1])[..., None, None]  # [c, B, H, 1, 1]
    chunk_reset = n_resets[:, -1] > 0  # [c, B]
    h_last, h_end = linear_recurrence(chunk_decay, states, chunk_reset, h0, method)
    h_in = jnp.concatenate([h0[None].astype(h_end.dtype), h_end[:-1]], axis=0)  # entering each chunk

    # 3. the entering state's share, up to the chunk's first reset
    carry_decay = jnp.where((n_resets == 0)[..., None], jnp.exp(cum), 0.0)  # [c, Q, B, H]
    y_off = jnp.einsum("ctbn,cbhpn->ctbhp", c, h_in) * carry_decay[..., None]

    y = (y_diag + y_off).reshape((n_chunks * q,) + y_diag.shape[2:])[:t_len]
    return h_last, y


def ssd_recurrence(
    x: jax.Array,
    dt: jax.Array,
    a: jax.Array,
    b: jax.Array,
    c: jax.Array,
    resets: jax.Array,
    h0: jax.Array,
    method: ScanMethod = "auto",
) -> tuple[jax.Array, jax.Array]:
    """Same contract as :func:`ssd_chunked`, run step by step through ``linear_recurrence``.

    Materialises the ``[T, B, H, P, N]`` states; ``method`` is ``sequential`` / ``associative`` /
    ``auto``.
    """
    decay = jnp.exp(dt * a)[..., None, None]  # [T, B, H, 1, 1]
    inp = (x * dt[..., None])[..., None] * b[:, :, None, None, :]  # [T, B, H, P, N]
    h_last, h = linear_recurrence(decay, inp, resets, h0, method)
    return h_last, jnp.einsum("tbhpn,tbn->tbhp", h, c)
