"""Residual blocks and stacks of sequence layers (the S5 / S4WM layout).

Block: ``x + dropout(mix(layer(norm(x))))`` where ``mix`` is ``full_glu``
(``gelu(z) W1 * sigmoid(gelu(z) W2)``), ``half_glu`` (``gelu(z) * sigmoid(gelu(z) W)``), ``gelu`` or
``none``. Everything but ``layer`` acts per step, so the block keeps the two-mode contract.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.precision import dense_group

MIXES = ("full_glu", "half_glu", "gelu", "none")


class Block(SequenceLayer):
    """Pre-norm residual block around one sequence layer; ``x [T, B, H] -> [T, B, H]``."""

    layer: SequenceLayer
    features: int
    mix: str = "full_glu"
    dropout: float = 0.0
    deterministic: bool = True

    def setup(self):
        if self.mix not in MIXES:
            raise ValueError(f"unknown block mix {self.mix!r}; valid: {list(MIXES)}")
        self.norm = nn.LayerNorm()
        if self.mix == "full_glu":
            self.out1 = nn.Dense(self.features)
            self.out2 = nn.Dense(self.features)
        elif self.mix == "half_glu":
            self.out2 = nn.Dense(self.features)
        self.drop = nn.Dropout(self.dropout)

    def _mix(self, z: jax.Array) -> jax.Array:
        if self.mix == "none":
            return z
        z = nn.gelu(z)
        if self.mix == "full_glu":
            z1, z2 = dense_group([self.out1, self.out2], z)  # one matmul, out1 and out2 side by side
            z = z1 * jax.nn.sigmoid(z2)
        elif self.mix == "half_glu":
            z = z * jax.nn.sigmoid(self.out2(z))
        return self.drop(z, deterministic=self.deterministic)

    def initialize_carry(self, batch_size: int):
        return self.layer.initialize_carry(batch_size)

    def scan(self, carry, x, resets):
        carry, z = self.layer.scan(carry, self.norm(x), resets)
        return carry, x + self._mix(z)

    def step(self, carry, x_t, reset_t):
        carry, z = self.layer.step(carry, self.norm(x_t), reset_t)
        return carry, x_t + self._mix(z)


class Stack(SequenceLayer):
    """Input projection to ``features`` (when the input width differs), then sequence layers in turn.

    ``layers`` are the stacked modules (blocks for SSMs, bare cells for RNN baselines);
    ``final_norm`` adds a LayerNorm on the output. ``x [T, B, H_in] -> y [T, B, features]``.
    """

    layers: Sequence[SequenceLayer]
    features: int
    final_norm: bool = False

    def setup(self):
        self.encoder = nn.Dense(self.features)
        if self.final_norm:
            self.norm = nn.LayerNorm()

    def _project(self, x):
        return x if x.shape[-1] == self.features else self.encoder(x)

    def _finish(self, y):
        return self.norm(y) if self.final_norm else y

    def initialize_carry(self, batch_size: int):
        return tuple(layer.initialize_carry(batch_size) for layer in self.layers)

    def scan(self, carry, x, resets):
        x = self._project(x)
        new_carry = []
        for layer, c in zip(self.layers, carry):
            c, x = layer.scan(c, x, resets)
            new_carry.append(c)
        return tuple(new_carry), self._finish(x)

    def step(self, carry, x_t, reset_t):
        x_t = self._project(x_t)
        new_carry = []
        for layer, c in zip(self.layers, carry):
            c, x_t = layer.step(c, x_t, reset_t)
            new_carry.append(c)
        return tuple(new_carry), self._finish(x_t)


def ssm_stack(layer_fn: Callable[[], SequenceLayer], features: int, num_layers: int, mix: str,
              dropout: float, final_norm: bool) -> Stack:
    """``num_layers`` residual blocks of ``layer_fn()`` behind an input projection."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    blocks = tuple(
        Block(layer=layer_fn(), features=features, mix=mix, dropout=dropout, deterministic=dropout == 0.0)
        for _ in range(num_layers)
    )
    return Stack(layers=blocks, features=features, final_norm=final_norm)
