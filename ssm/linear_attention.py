"""Gated linear attention (Yang et al. 2024, GLA; RetNet's decay with a data-dependent gate).

Per head, a matrix state ``S [d_k, d_v]`` replaces the softmax over the past:

    S_t = diag(α_t) S_{t-1} + k_t v_tᵀ,        o_t = S_tᵀ q_t

with ``α_t = σ(W_α x_t + b_α)^(1/τ)`` in ``(0, 1)^{d_k}``. Unrolled, ``o_t = Σ_{s<=t} (q_t ⊙ Π_{r=s+1..t} α_r)·k_s
v_s``: causal attention whose scores decay with distance, computed in linear time. The state update is
the reset-aware linear recurrence of ``ssm.scan`` with ``a = α_t`` broadcast over the value axis. Each
head's output is normalised (RetNet's group norm), gated by ``silu(W_g x_t)`` and projected back.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.attention import head_dim
from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import ssm_stack
from ssmrl.ssm.scan import linear_recurrence, linear_step


def _elements(k: jax.Array, v: jax.Array, log_decay: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The recurrence's ``(a [..., d_k, 1], b [..., d_k, d_v])``: decay per key row, outer product ``k vᵀ``."""
    return jnp.exp(log_decay)[..., None], k[..., None] * v[..., None, :]


def _read(q: jax.Array, s: jax.Array) -> jax.Array:
    """``o = Sᵀ q``: ``q [..., d_k], S [..., d_k, d_v] -> [..., d_v]``."""
    return jnp.einsum("...k,...kv->...v", q, s)


def gated_linear_attention(q: jax.Array, k: jax.Array, v: jax.Array, log_decay: jax.Array, resets: jax.Array,
                           state: jax.Array, method: str = "auto") -> tuple[jax.Array, jax.Array]:
    """``q, k, log_decay [T, B, heads, d_k]``, ``v [T, B, heads, d_v]``, ``resets [T, B]``, ``state [B, heads,
    d_k, d_v]`` -> ``(state [B, heads, d_k, d_v], o [T, B, heads, d_v])``."""
    state, s = linear_recurrence(*_elements(k, v, log_decay), resets, state, method)
    return state, _read(q, s)


class LinearAttention(SequenceLayer):
    """One gated linear-attention layer: ``x [T, B, H] -> [T, B, features]``; carry ``[B, heads, d, d]``
    with ``d = features / num_heads``."""

    features: int
    num_heads: int = 4
    gate_temperature: float = 16.0
    scan_method: str = "auto"

    @property
    def head_dim(self) -> int:
        return head_dim(self.features, self.num_heads)

    def setup(self):
        self.qkv = nn.Dense(3 * self.features, use_bias=False)
        self.decay = nn.Dense(self.features)
        self.gate = nn.Dense(self.features)
        self.head_norm = nn.LayerNorm()
        self.out = nn.Dense(self.features)

    def _heads(self, a: jax.Array) -> jax.Array:
        return a.reshape(*a.shape[:-1], self.num_heads, self.head_dim)

    def _project(self, x: jax.Array):
        """``x [..., H] -> q, k, v, log α``, each ``[..., heads, d]``; keys scaled by ``1/sqrt(d)``."""
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        # τ > 1 pushes α towards 1 at the start of training: long memory first (GLA's normaliser).
        log_decay = jax.nn.log_sigmoid(self.decay(x)) / self.gate_temperature
        k = k / jnp.sqrt(jnp.float32(self.head_dim))
        return tuple(self._heads(a) for a in (q, k, v, log_decay))

    def _finish(self, x: jax.Array, o: jax.Array) -> jax.Array:
        o = self.head_norm(o).reshape(*o.shape[:-2], self.features)
        return self.out(o * nn.silu(self.gate(x)))

    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.num_heads, self.head_dim, self.head_dim), jnp.float32)

    def scan(self, carry, x, resets):
        q, k, v, log_decay = self._project(x)
        carry, o = gated_linear_attention(q, k, v, log_decay, resets, carry, self.scan_method)
        return carry, self._finish(x, o)

    def step(self, carry, x_t, reset_t):
        q, k, v, log_decay = self._project(x_t)
        s = linear_step(*_elements(k, v, log_decay), reset_t, carry)
        return s, self._finish(x_t, _read(q, s))


def build(
    features: int,
    num_heads: int = 4,
    gate_temperature: float = 16.0,
    scan_method: str = "auto",
    num_layers: int = 1,
    mix: str = "full_glu",
    dropout: float = 0.0,
    final_norm: bool = False,
) -> SequenceLayer:
    """A stack of ``num_layers`` residual gated-linear-attention blocks of width ``features``."""

    def layer():
        return LinearAttention(features=features, num_heads=num_heads, gate_temperature=gate_temperature,
                               scan_method=scan_method)

    return ssm_stack(layer, features, num_layers, mix, dropout, final_norm)
