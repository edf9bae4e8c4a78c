"""A GTrXL-style transformer (Parisotto et al. 2020) with a bounded, reset-aware memory.

Each block is pre-norm with GRU-type gates in place of the residual sums:

    y = g_1(x, relu(attn(LN(x)))),        out = g_2(y, relu(mlp(LN(y))))
    g(x, u) = (1 - z) ⊙ x + z ⊙ tanh(W_h u + U_h (r ⊙ x)),  r = σ(W_r u + U_r x),  z = σ(W_z u + U_z x - b_g)

``b_g > 0`` starts every gate near the identity, which is what lets GTrXL train under RL losses.
Attention is causal over a window of the last ``memory`` steps and never crosses an episode start
(``ssm.attention``). The carry holds, per block, those ``memory`` keys and values and whether each
still belongs to the running episode: ``k, v [B, memory, heads, d]``, ``valid [B, memory]``. Parallel
mode attends over ``[carried window, sequence]`` with the same window, so it equals step mode from any
carry; step mode is parallel mode over a length-one sequence.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.attention import head_dim, window_mask, windowed_attention
from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import Stack


class GRUGate(nn.Module):
    """``g(x, u)`` above: ``x, u [..., features] -> [..., features]``."""

    features: int
    bias: float = 2.0

    @nn.compact
    def __call__(self, x: jax.Array, u: jax.Array) -> jax.Array:
        wr, wz, wh = jnp.split(nn.Dense(3 * self.features)(u), 3, axis=-1)
        ur, uz = jnp.split(nn.Dense(2 * self.features, use_bias=False)(x), 2, axis=-1)
        r = jax.nn.sigmoid(wr + ur)
        z = jax.nn.sigmoid(wz + uz - self.bias)
        h = jnp.tanh(wh + nn.Dense(self.features, use_bias=False)(r * x))
        return (1.0 - z) * x + z * h


class GTrXLBlock(SequenceLayer):
    """One gated transformer block: ``x [T, B, features] -> [T, B, features]``.

    ``dropout`` (on attention weights and both branches) acts only when ``apply`` is given a ``dropout``
    rng, so the same module trains with dropout and acts or evaluates without it.
    """

    features: int
    num_heads: int = 4
    memory: int = 64
    gate_bias: float = 2.0
    dropout: float = 0.0

    @property
    def head_dim(self) -> int:
        return head_dim(self.features, self.num_heads)

    def setup(self):
        if self.memory < 1:
            raise ValueError(f"memory must be >= 1, got {self.memory}")
        self.attn_norm = nn.LayerNorm()
        self.qkv = nn.Dense(3 * self.features)
        self.attn_out = nn.Dense(self.features)
        self.distance_bias = self.param("distance_bias", nn.initializers.zeros, (self.num_heads, self.memory + 1))
        self.attn_gate = GRUGate(self.features, self.gate_bias)
        self.mlp_norm = nn.LayerNorm()
        self.mlp_in = nn.Dense(4 * self.features)
        self.mlp_out = nn.Dense(self.features)
        self.mlp_gate = GRUGate(self.features, self.gate_bias)
        self.drop = nn.Dropout(self.dropout)

    def _drop(self, x: jax.Array) -> jax.Array:
        return self.drop(x, deterministic=not self.has_rng("dropout"))

    def initialize_carry(self, batch_size: int) -> dict:
        kv = jnp.zeros((batch_size, self.memory, self.num_heads, self.head_dim), jnp.float32)
        return {"k": kv, "v": kv, "valid": jnp.zeros((batch_size, self.memory), bool)}

    def _attend(self, carry: dict, x: jax.Array, resets: jax.Array) -> tuple[dict, jax.Array]:
        t, b, _ = x.shape
        q, k, v = jnp.split(self.qkv(self.attn_norm(x)).reshape(t, b, 3, self.num_heads, self.head_dim), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
        k_all = jnp.concatenate([jnp.swapaxes(carry["k"], 0, 1), k], axis=0)  # [M+T, B, heads, d]
        v_all = jnp.concatenate([jnp.swapaxes(carry["v"], 0, 1), v], axis=0)
        mask, distance, valid = window_mask(resets, carry["valid"])
        bias = self.distance_bias[:, jnp.clip(distance, 0, self.memory)]
        weights = self._drop(windowed_attention(q, k_all, v_all, mask, bias))
        out = jnp.einsum("bhts,sbhd->tbhd", weights, v_all).reshape(t, b, self.features)
        carry = {"k": jnp.swapaxes(k_all[t:], 0, 1), "v": jnp.swapaxes(v_all[t:], 0, 1), "valid": valid}
        return carry, self._drop(self.attn_out(out))

    def scan(self, carry, x, resets):
        carry, a = self._attend(carry, x, resets)
        y = self.attn_gate(x, nn.relu(a))
        e = self._drop(self.mlp_out(nn.gelu(self.mlp_in(self.mlp_norm(y)))))
        return carry, self.mlp_gate(y, nn.relu(e))

    def step(self, carry, x_t, reset_t):
        carry, y = self.scan(carry, x_t[None], reset_t[None])
        return carry, y[0]


def build(
    features: int,
    num_heads: int = 4,
    memory: int = 64,
    num_layers: int = 1,
    gate_bias: float = 2.0,
    attention_dropout: float = 0.0,
    final_norm: bool = False,
) -> SequenceLayer:
    """``num_layers`` GTrXL blocks of width ``features``, each attending over the last ``memory`` steps.

    ``attention_dropout`` is the blocks' dropout, active only under a ``dropout`` rng (see GTrXLBlock).
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    blocks = tuple(GTrXLBlock(features=features, num_heads=num_heads, memory=memory, gate_bias=gate_bias,
                              dropout=attention_dropout) for _ in range(num_layers))
    return Stack(layers=blocks, features=features, final_norm=final_norm)
