"""The two-mode contract every sequence layer keeps.

A layer is a Flax Linen module with

* ``initialize_carry(batch_size) -> carry``: a pytree of zeros, meaning "fresh episode"; callable on
  an unbound module (it depends on attributes only).
* ``scan(carry, x, resets) -> (carry, y)``: parallel mode, ``x [T, B, H_in]``, ``resets [T, B]`` bool,
  ``y [T, B, H_out]``. ``resets[t, b]`` replaces the state carried into step t by the initial state.
* ``step(carry, x_t, reset_t) -> (carry, y_t)``: one step, ``x_t [B, H_in]``, ``reset_t [B]``.
* ``__call__(x, resets, carry=None) -> y``: parallel mode from a fresh (or given) carry.

Both modes give the same outputs to float32 tolerance.
"""

from __future__ import annotations

import flax.linen as nn
import jax


class SequenceLayer(nn.Module):
    """Base class: subclasses define ``initialize_carry``, ``scan`` and ``step``."""

    def initialize_carry(self, batch_size: int):
        raise NotImplementedError

    def scan(self, carry, x: jax.Array, resets: jax.Array):
        raise NotImplementedError

    def step(self, carry, x_t: jax.Array, reset_t: jax.Array):
        raise NotImplementedError

    def __call__(self, x: jax.Array, resets: jax.Array, carry=None) -> jax.Array:
        if carry is None:
            carry = self.initialize_carry(x.shape[1])
        return self.scan(carry, x, resets)[1]


def step_mode_outputs(model: nn.Module, params, x: jax.Array, resets: jax.Array, carry=None):
    """Run a module's ``step`` over ``x [T, B, H]`` from outside (tests, benchmarks): ``(carry, y)``."""
    if carry is None:
        carry = model.initialize_carry(x.shape[1])

    def body(c, inputs):
        x_t, r_t = inputs
        return model.apply(params, c, x_t, r_t, method="step")

    return jax.lax.scan(body, carry, (x, resets))

