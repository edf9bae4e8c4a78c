"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?").

The GRU with its gates computed from the input only:

    z_t = σ(W_z x_t + b_z),    h̃_t = W_h x_t + b_h,    h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

Nothing on the right depends on ``h_{t-1}`` except through the product, so the recurrence is linear,
``h_t = a_t ⊙ h_{t-1} + b_t`` with ``a_t = 1 - z_t = σ(-(W_z x_t + b_z))`` and ``b_t = z_t ⊙ h̃_t``, and runs
through the reset-aware scan of ``ssm.scan`` in parallel mode.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import ssm_stack
from ssmrl.ssm.scan import linear_recurrence, linear_step


class MinGRU(SequenceLayer):
    """One minGRU: ``x [T, B, H_in] -> h [T, B, features]``; carry ``h [B, features]``."""

    features: int
    scan_method: str = "auto"

    def setup(self):
        self.proj = nn.Dense(2 * self.features)

    def _elements(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(a, b)`` of the linear recurrence, each ``[..., features]``."""
        gate, candidate = jnp.split(self.proj(x), 2, axis=-1)
        return jax.nn.sigmoid(-gate), jax.nn.sigmoid(gate) * candidate

    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.features), jnp.float32)

    def scan(self, carry, x, resets):
        a, b = self._elements(x)
        return linear_recurrence(a, b, resets, carry, self.scan_method)

    def step(self, carry, x_t, reset_t):
        h = linear_step(*self._elements(x_t), reset_t, carry)
        return h, h


def build(
    features: int,
    scan_method: str = "auto",
    num_layers: int = 1,
    mix: str = "full_glu",
    dropout: float = 0.0,
    final_norm: bool = False,
) -> SequenceLayer:
    """A stack of ``num_layers`` residual minGRU blocks of width ``features`` (the paper's deep layout)."""
    return ssm_stack(lambda: MinGRU(features=features, scan_method=scan_method), features, num_layers, mix, dropout,
                     final_norm)
