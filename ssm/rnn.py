"""Recurrent baselines (GRU, LSTM) and a memoryless MLP behind the same two-mode contract.

The input projections act on the whole sequence at once; only the recurrent matrix product runs
inside the sequential scan. Recurrent kernels use a scaled normal init instead of the usual
orthogonal one: batched QR inside a vmapped, jitted train function deadlocks XLA's CPU runtime.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import Stack
from ssmrl.ssm.precision import current, matmul, matmul_precision
from ssmrl.ssm.scan import reset_carry

ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh, "gelu": nn.gelu, "leaky_relu": nn.leaky_relu}


def _recurrent_init(features: int):
    return nn.initializers.normal(stddev=1.0 / jnp.sqrt(features))


def _gru_gates(hm, xi, w_h, b_h):
    hh = matmul(hm, w_h) + b_h
    xr, xz, xn = jnp.split(xi, 3, axis=-1)
    hr, hz, hn = jnp.split(hh, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return (1.0 - z) * n + z * hm, (r, z, n, hn)


def _gru_forward(precision, w_h, b_h, xi, resets, h0):
    def body(h, inputs):
        x_t, r_t = inputs
        hm = jnp.where(r_t[:, None], 0.0, h)
        h, gates = _gru_gates(hm, x_t, w_h, b_h)
        return h, (h, hm, gates)

    with matmul_precision(precision):
        h_last, (hs, hms, gates) = jax.lax.scan(body, h0, (xi, resets))
    return h_last, hs, hms, gates


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def gru_sequence(precision, w_h, b_h, xi, resets, h0):
    """The GRU recurrence over ``xi [T, B, 3F]`` (input projections) from ``h0 [B, F]``: ``(h_last, hs)``.

    Its own backward pass: the loop carries only ``dh`` (one ``[B, 3F] x [3F, F]`` product a step) and
    the recurrent kernel's gradient is one ``[F, T*B] x [T*B, 3F]`` product after the loop, instead of
    an outer product accumulated at every step as autodiff of the scan would.
    """
    h_last, hs, _, _ = _gru_forward(precision, w_h, b_h, xi, resets, h0)
    return h_last, hs


def _gru_sequence_fwd(precision, w_h, b_h, xi, resets, h0):
    h_last, hs, hms, gates = _gru_forward(precision, w_h, b_h, xi, resets, h0)
    return (h_last, hs), (w_h, resets, hms, gates)


def _gru_sequence_bwd(precision, residuals, cotangents):
    w_h, resets, hms, (r, z, n, hn) = residuals
    d_last, d_hs = cotangents

    def body(dh_next, inputs):
        dy, r_t, z_t, n_t, hn_t, hm_t, reset_t = inputs
        dh = dh_next + dy
        dan = dh * (1.0 - z_t) * (1.0 - n_t * n_t)
        daz = dh * (hm_t - n_t) * z_t * (1.0 - z_t)
        dar = dan * hn_t * r_t * (1.0 - r_t)
        dhh = jnp.concatenate([dar, daz, dan * r_t], axis=-1)
        dxi = jnp.concatenate([dar, daz, dan], axis=-1)
        dhm = dh * z_t + matmul(dhh, w_h.T)
        return jnp.where(reset_t[:, None], 0.0, dhm), (dxi, dhh)

    with matmul_precision(precision):
        dh0, (dxi, dhh) = jax.lax.scan(body, d_last, (d_hs, r, z, n, hn, hms, resets), reverse=True)
        features = hms.shape[-1]
        dw = matmul(hms.reshape(-1, features).T, dhh.reshape(-1, 3 * features))
    return dw, dhh.sum(axis=tuple(range(dhh.ndim - 1))), dxi, None, dh0


gru_sequence.defvjp(_gru_sequence_fwd, _gru_sequence_bwd)


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
        return gru_sequence(current(), self.w_h, self.b_h, self.input_proj(x), resets.astype(bool), carry)

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
