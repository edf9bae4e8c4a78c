"""S5 (Smith et al. 2023), made resettable as in Lu et al. 2023.

A MIMO diagonal SSM per layer:

    h_t = (1 - d_t) * Λ̄ h_{t-1} + B̄ u_t,        y_t = 2 Re(C̃ h_t) + D u_t

``Λ`` starts at the (block-diagonal) eigenvalues of HiPPO-N; ``B̃ = V^* B`` and ``C̃ = C V`` are the
input and output matrices seen in its eigenbasis. Under conjugate symmetry only one eigenvalue of
every conjugate pair is kept and the output takes ``2 Re``. ``Λ̄, B̄`` come from zero-order hold or
the bilinear transform with a learnable per-state log time-step. Complex parameters are stored as
separate real and imaginary arrays.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import ssm_stack
from ssmrl.ssm.diagonal import ComplexDiagonalLayer, real_input, real_readout
from ssmrl.ssm.hippo import block_diagonal_eig

DISCRETIZATIONS = ("zoh", "bilinear")


def discretize(lam: jax.Array, b: jax.Array, dt: jax.Array, method: str) -> tuple[jax.Array, jax.Array]:
    """``Λ [P], B [P, H], Δ [P] -> (Λ̄ [P], B̄ [P, H])`` by zero-order hold or the bilinear transform."""
    if method == "zoh":
        lam_bar = jnp.exp(lam * dt)
        return lam_bar, ((lam_bar - 1.0) / lam)[:, None] * b
    inv = 1.0 / (1.0 - dt / 2.0 * lam)
    return inv * (1.0 + dt / 2.0 * lam), (inv * dt)[:, None] * b


class S5Layer(ComplexDiagonalLayer):
    """One S5 SSM: ``x [T, B, features] -> y [T, B, features]``; carry ``[B, P]`` complex64.

    ``state_size`` is the size of the HiPPO-N matrix; with ``conj_sym`` the layer carries
    ``P = state_size / 2`` complex states.
    """

    features: int
    state_size: int = 64
    blocks: int = 1
    conj_sym: bool = True
    discretization: str = "zoh"
    dt_min: float = 0.001
    dt_max: float = 0.1
    scan_method: str = "auto"

    @property
    def num_states(self) -> int:
        return self.state_size // 2 if self.conj_sym else self.state_size

    def setup(self):
        if self.discretization not in DISCRETIZATIONS:
            raise ValueError(f"unknown discretization {self.discretization!r}; valid: {list(DISCRETIZATIONS)}")
        lam, v = block_diagonal_eig(self.state_size, self.blocks, self.conj_sym)
        v = jnp.asarray(v, jnp.complex64)
        lecun = nn.initializers.lecun_normal()

        def b_init(key, shape):
            b = lecun(key, (self.state_size, self.features))
            b_tilde = v.conj().T @ b.astype(jnp.complex64)
            return jnp.stack([b_tilde.real, b_tilde.imag], axis=-1)

        def c_init(key, shape):
            c = lecun(key, (self.features, self.state_size))
            c_tilde = c.astype(jnp.complex64) @ v
            return jnp.stack([c_tilde.real, c_tilde.imag], axis=-1)

        def log_dt_init(key, shape):
            return jax.random.uniform(key, shape, minval=np.log(self.dt_min), maxval=np.log(self.dt_max))

        p = self.num_states
        self.lambda_re = self.param("lambda_re", lambda k, s: jnp.asarray(lam.real, jnp.float32), (p,))
        self.lambda_im = self.param("lambda_im", lambda k, s: jnp.asarray(lam.imag, jnp.float32), (p,))
        self.b = self.param("B", b_init, (p, self.features, 2))
        self.c = self.param("C", c_init, (self.features, p, 2))
        self.d = self.param("D", nn.initializers.normal(1.0), (self.features,))
        self.log_dt = self.param("log_dt", log_dt_init, (p,))

    def _system(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(Λ̄ [P] complex, B̄ as real [H, 2P], readout as real [2P, H])`` (``ssm.diagonal``)."""
        # Clipping keeps every eigenvalue strictly stable whatever the optimiser does.
        lam = jnp.minimum(self.lambda_re, -1e-4) + 1j * self.lambda_im
        b = self.b[..., 0] + 1j * self.b[..., 1]
        lam_bar, b_bar = discretize(lam, b, jnp.exp(self.log_dt), self.discretization)
        return lam_bar, real_input(b_bar), real_readout(self.c, 2.0 if self.conj_sym else 1.0)


def build(
    features: int,
    state_size: int = 64,
    blocks: int = 1,
    conj_sym: bool = True,
    discretization: str = "zoh",
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    scan_method: str = "auto",
    num_layers: int = 1,
    mix: str = "full_glu",
    dropout: float = 0.0,
    final_norm: bool = False,
) -> SequenceLayer:
    """A stack of ``num_layers`` residual S5 blocks of width ``features``."""

    def layer():
        return S5Layer(features=features, state_size=state_size, blocks=blocks, conj_sym=conj_sym,
                       discretization=discretization, dt_min=dt_min, dt_max=dt_max, scan_method=scan_method)

    return ssm_stack(layer, features, num_layers, mix, dropout, final_norm)
