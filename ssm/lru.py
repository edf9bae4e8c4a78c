"""LRU, the Linear Recurrent Unit (Orvieto et al. 2023).

A complex diagonal recurrence with no discretisation step:

    h_t = λ ⊙ h_{t-1} + γ ⊙ (B x_t),        y_t = Re(C h_t) + D x_t

with the exponential parametrisation ``λ = exp(-exp(ν) + i exp(θ))``, so ``|λ| = exp(-exp(ν)) < 1`` for
any real ``ν``: the layer stays stable whatever the optimiser does. ``γ = sqrt(1 - |λ|²)`` (learned from
that value, as a log) keeps the state's scale independent of how close ``|λ|`` sits to 1. The ring
initialisation draws ``|λ|²`` uniformly in ``[r_min², r_max²]`` and the phase uniformly in
``[0, max_phase]``. Complex parameters are stored as separate real and imaginary arrays.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import ssm_stack
from ssmrl.ssm.diagonal import ComplexDiagonalLayer, real_input, real_readout


def nu_log_init(r_min: float, r_max: float):
    """Initialiser of ``ν_log [n]``: ``|λ|²`` uniform in ``[r_min², r_max²]``, covering the ring's area evenly."""

    def init(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        u = jax.random.uniform(key, shape)
        return jnp.log(-0.5 * jnp.log(u * (r_max**2 - r_min**2) + r_min**2))

    return init


def theta_log_init(max_phase: float):
    """Initialiser of ``θ_log [n]``: phase ``arg λ`` uniform in ``[0, max_phase]``."""

    def init(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        return jnp.log(max_phase * jax.random.uniform(key, shape))

    return init


def eigenvalues(nu_log: jax.Array, theta_log: jax.Array) -> jax.Array:
    """``λ = exp(-exp(ν_log) + i exp(θ_log))``, complex64 ``[n]``, always strictly inside the unit circle."""
    return jnp.exp(jax.lax.complex(-jnp.exp(nu_log), jnp.exp(theta_log)))


class LRULayer(ComplexDiagonalLayer):
    """One LRU: ``x [T, B, features] -> y [T, B, features]``; carry ``[B, state_size]`` complex64."""

    features: int
    state_size: int = 64
    r_min: float = 0.9
    r_max: float = 0.999
    max_phase: float = 2 * math.pi
    scan_method: str = "auto"

    def setup(self):
        if not 0.0 <= self.r_min < self.r_max < 1.0:
            raise ValueError(f"need 0 <= r_min < r_max < 1, got r_min={self.r_min}, r_max={self.r_max}")
        n, h = self.state_size, self.features
        self.nu_log = self.param("nu_log", nu_log_init(self.r_min, self.r_max), (n,))
        self.theta_log = self.param("theta_log", theta_log_init(self.max_phase), (n,))
        # γ starts at sqrt(1 - |λ|²) with |λ|² = exp(-2 exp(ν_log)).
        self.gamma_log = self.param("gamma_log", lambda k, s: 0.5 * jnp.log1p(-jnp.exp(-2.0 * jnp.exp(self.nu_log))),
                                    (n,))
        # Glorot-like scales from the paper: the input sums over H features, the readout over N states.
        self.b = self.param("B", nn.initializers.normal(1.0 / jnp.sqrt(2.0 * h)), (n, h, 2))
        self.c = self.param("C", nn.initializers.normal(1.0 / jnp.sqrt(n)), (h, n, 2))
        self.d = self.param("D", nn.initializers.normal(1.0), (h,))

    @property
    def num_states(self) -> int:
        return self.state_size

    def _system(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(λ [N] complex, γ B as real [H, 2N], readout as real [2N, H])`` (``ssm.diagonal``)."""
        b = jnp.exp(self.gamma_log)[:, None] * jax.lax.complex(self.b[..., 0], self.b[..., 1])
        return eigenvalues(self.nu_log, self.theta_log), real_input(b), real_readout(self.c)


def build(
    features: int,
    state_size: int = 64,
    r_min: float = 0.9,
    r_max: float = 0.999,
    max_phase: float = 2 * math.pi,
    scan_method: str = "auto",
    num_layers: int = 1,
    mix: str = "full_glu",
    dropout: float = 0.0,
    final_norm: bool = False,
) -> SequenceLayer:
    """A stack of ``num_layers`` residual LRU blocks of width ``features``."""

    def layer():
        return LRULayer(features=features, state_size=state_size, r_min=r_min, r_max=r_max, max_phase=max_phase,
                        scan_method=scan_method)

    return ssm_stack(layer, features, num_layers, mix, dropout, final_norm)
