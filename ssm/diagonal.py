"""The complex diagonal recurrence shared by S5 and LRU, run in real arithmetic where it can be.

    h_t = λ ⊙ h_{t-1} + B̄ x_t,        y_t = Re(C̃ h_t) + D x_t

A subclass supplies ``_system() -> (λ [P] complex, B̄ as real [H, 2P], readout as real [2P, H])``,
``num_states`` (``P``) and the params ``d`` and ``scan_method``. The matrix products run on stacked real
and imaginary parts: XLA's CPU complex matmul is several times slower than a real one of twice the
width. The recurrence itself is the reset-aware scan of ``ssm.scan``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.precision import matmul
from ssmrl.ssm.scan import linear_recurrence, linear_step


def real_input(b: jax.Array) -> jax.Array:
    """``B̄ [P, H]`` complex -> ``[H, 2P]`` real, so that ``x @ it`` stacks ``Re(B̄ x)`` and ``Im(B̄ x)``."""
    return jnp.concatenate([b.real, b.imag], axis=0).T


def real_readout(c: jax.Array, scale: float = 1.0) -> jax.Array:
    """``C̃`` stored as ``[H, P, 2]`` (real, imaginary) -> ``[2P, H]`` with ``[h.re, h.im] @ it = scale Re(C̃ h)``."""
    # Re(C h) = C_re h_re - C_im h_im
    return scale * jnp.concatenate([c[..., 0], -c[..., 1]], axis=1).T


class ComplexDiagonalLayer(SequenceLayer):
    """``x [T, B, H] -> y [T, B, H]``; carry ``[B, P]`` complex64."""

    def _system(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        raise NotImplementedError

    def _input(self, b_real: jax.Array, x: jax.Array) -> jax.Array:
        re, im = jnp.split(matmul(x, b_real), 2, axis=-1)
        return jax.lax.complex(re, im)

    def _readout(self, c_real: jax.Array, h: jax.Array, x: jax.Array) -> jax.Array:
        return matmul(jnp.concatenate([h.real, h.imag], axis=-1), c_real) + self.d * x

    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.num_states), jnp.complex64)

    def scan(self, carry, x, resets):
        lam, b_real, c_real = self._system()
        carry, h = linear_recurrence(lam, self._input(b_real, x), resets, carry, self.scan_method)
        return carry, self._readout(c_real, h, x)

    def step(self, carry, x_t, reset_t):
        lam, b_real, c_real = self._system()
        h = linear_step(lam, self._input(b_real, x_t), reset_t, carry)
        return h, self._readout(c_real, h, x_t)
