"""Recurrent baselines (GRU, LSTM) and a memoryless MLP behind the same two-mode contract.

The input projections act on the whole sequence at once; only the recurrent matrix product runs
inside the sequential scan. Recurrent kernels use a scaled normal init instead of the usual
orthogonal one: batched QR inside a vmapped, jitted train function deadlocks XLA's CPU runtime.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import Stack
from ssmrl.ssm.precision import matmul
from ssmrl.ssm.scan import reset_carry

ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh, "gelu": nn.gelu, "leaky_relu": nn.leaky_relu}


def _recurrent_init(features: int):
    return nn.initializers.normal(stddev=1.0 / jnp.sqrt(features))


class GRU(SequenceLayer):
    """Gated recurrent unit: ``x [T, B, H_in] -> h [T, B, features]``; carry ``h [B, features]``."""

    features: int

    def setup(self):
        f = self.features
        self.input_proj = nn.Dense(3 * f)
        self.w_h = self.param("w_h", _recurrent_init(f), (f, 3 * f))
        self.b_h = self.param("b_h", nn.initializers.zeros, (3 * f,))

    def _cell(self, h: jax.Array, xi: jax.Array) -> jax.Array:
        hh = matmul(h, self.w_h) + self.b_h
        xr, xz, xn = jnp.split(xi, 3, axis=-1)
        hr, hz, hn = jnp.split(hh, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        return (1.0 - z) * n + z * h

    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.features), jnp.float32)

    def scan(self, carry, x, resets):
        def body(h, inputs):
            xi, r = inputs
            h = self._cell(jnp.where(r[:, None], 0.0, h), xi)
            return h, h

        return jax.lax.scan(body, carry, (self.input_proj(x), resets))

    def step(self, carry, x_t, reset_t):
        h = self._cell(jnp.where(reset_t[:, None], 0.0, carry), self.input_proj(x_t))
        return h, h


class LSTM(SequenceLayer):
    """Long short-term memory: ``x [T, B, H_in] -> h [T, B, features]``; carry ``(c, h)``."""

    features: int

    def setup(self):
        f = self.features
        self.input_proj = nn.Dense(4 * f)
        self.w_h = self.param("w_h", _recurrent_init(f), (f, 4 * f))

    def _cell(self, carry, xi):
        c, h = carry
        i, g, f, o = jnp.split(xi + matmul(h, self.w_h), 4, axis=-1)
        # +1 on the forget gate: remember by default at the start of training.
        c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return c, h

    def initialize_carry(self, batch_size: int):
        zeros = jnp.zeros((batch_size, self.features), jnp.float32)
        return zeros, zeros

    def scan(self, carry, x, resets):
        fresh = self.initialize_carry(x.shape[1])

        def body(c, inputs):
            xi, r = inputs
            c = self._cell(reset_carry(c, r, fresh), xi)
            return c, c[1]

        return jax.lax.scan(body, carry, (self.input_proj(x), resets))

    def step(self, carry, x_t, reset_t):
        carry = self._cell(reset_carry(carry, reset_t, self.initialize_carry(x_t.shape[0])), self.input_proj(x_t))
        return carry, carry[1]


class MLP(SequenceLayer):
    """Memoryless baseline: ``activation(Dense(x))`` at every step; the carry is empty."""

    features: int
    activation: str = "relu"

    def setup(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {sorted(ACTIVATIONS)}")
        self.dense = nn.Dense(self.features)

    def initialize_carry(self, batch_size: int):
        return ()

    def scan(self, carry, x, resets):
        return carry, ACTIVATIONS[self.activation](self.dense(x))

    def step(self, carry, x_t, reset_t):
        return carry, ACTIVATIONS[self.activation](self.dense(x_t))


def build_gru(features: int, num_layers: int = 1) -> SequenceLayer:
    """``num_layers`` stacked GRUs of width ``features``."""
    return Stack(layers=tuple(GRU(features=features) for _ in range(num_layers)), features=features)


def build_lstm(features: int, num_layers: int = 1) -> SequenceLayer:
    """``num_layers`` stacked LSTMs of width ``features``."""
    return Stack(layers=tuple(LSTM(features=features) for _ in range(num_layers)), features=features)


def build_mlp(features: int, num_layers: int = 1, activation: str = "relu") -> SequenceLayer:
    """``num_layers`` per-step dense layers: no memory at all."""
    layers = tuple(MLP(features=features, activation=activation) for _ in range(num_layers))
    return Stack(layers=layers, features=features)
