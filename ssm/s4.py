"""S4 (Gu et al. 2022, "Efficiently modeling long sequences with structured state spaces").

Every one of the ``H`` channels is a single-input single-output SSM whose state matrix is HiPPO-LegS
in normal-plus-low-rank form, written in the eigenbasis of its normal part (``ssm.hippo.hippo_nplr``):

    A = Λ - P P^*   (Λ diagonal, P a vector; tying Q = P keeps A's Hermitian part Re Λ - P P^*
                     negative definite, so A stays stable while Re Λ = -exp(·) < 0)

All ``N`` complex states are kept (no conjugate symmetry), with ``y_t = Re(C h_t) + D u_t``.
Bilinear discretisation with a learnable per-channel ``Δ``:

    Ā = (I - Δ/2 A)^{-1} (I + Δ/2 A) = (4/Δ) M - I,     B̄ = (I - Δ/2 A)^{-1} Δ B = 2 M B,

where ``M = (2/Δ - A)^{-1} = (D^{-1} + P P^*)^{-1}``, ``D = diag(1/(2/Δ - λ_n))``, is a rank-one
(Woodbury) correction of a diagonal matrix.

Convolution path (window length ``L``, roots of unity ``z_k = exp(-2πik/L)``): the truncated generating
function of the kernel ``K_l = C Ā^l B̄`` is, at ``z^L = 1``,

    K̂(z) = C̃ (I - Ā z)^{-1} B̄ = 2/(1+z) C̃ (g(z) - A)^{-1} B,    C̃ = C (I - Ā^L),
    g(z) = 2/Δ (1-z)/(1+z).

With the Cauchy kernel ``k_{u,v}(z) = Σ_n u_n v_n R_n(z)``, ``R_n(z) = 1/(2/Δ (1-z) - (1+z) λ_n)``
(this scaling keeps everything finite at ``z = -1``), the Woodbury identity gives

    K̂(z) = 2 [k_{C̃,B} - (1+z) k_{C̃,P} k_{P̄,B} / (1 + (1+z) k_{P̄,P})],

and ``K = Re(ifft(K̂))``, applied by FFT causal convolution. The same formula with ``B`` replaced by
``(2/Δ + A) h_{-1} / 2`` gives the generating function of ``C Ā^{t+1} h_{-1}``, the contribution of an
incoming carry; with ``C`` left out it gives the state vectors, so the final state
``Ā^L h_{-1} + Σ_j Ā^j B̄ u_{L-1-j}`` also costs ``O(N L)`` per channel and batch row (``Ā^L`` itself is
formed by repeated squaring of the dense ``N × N`` ``Ā``).

Recurrent path: ``h_t = Ā h_{t-1} + B̄ u_t`` with ``Ā = diag + rank one`` per channel in ``lax.scan``, the
carry replaced by zeros where ``resets`` is set (``ssm.dplr``). ``kernel_mode="auto"`` takes the convolution only for
windows without resets. Complex parameters are stored as real/imaginary float32 pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import ssm_stack
from ssmrl.ssm.dplr import dplr_recurrence, dplr_step
from ssmrl.ssm.hippo import hippo_nplr
from ssmrl.ssm.s4d import causal_conv, check_kernel_mode, constant, diagonal_params, run_windowed


def matrix_power(a: jax.Array, n: int) -> jax.Array:
    """``a^n`` for a static ``n >= 0`` by repeated squaring: ``a [..., N, N]``."""
    result = None
    base = a
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    if result is None:
        return jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)
    return result


class S4Layer(SequenceLayer):
    """``H = features`` NPLR (HiPPO-LegS) SISO SSMs: ``x [T, B, H] -> y [T, B, H]``; carry ``[B, H, N]`` complex64.

    Attributes:
      state_size: ``N``, the number of complex states per channel.
      dt_min, dt_max: range of the initial per-channel time step (log-uniform).
      kernel_mode: ``auto`` (convolution when the window has no resets, else recurrence), ``conv``
        (always convolution: resets are then IGNORED, only for windows known to hold none) or
        ``scan`` (always recurrence).
    """

    features: int
    state_size: int = 64
    dt_min: float = 0.001
    dt_max: float = 0.1
    kernel_mode: str = "auto"

    def setup(self):
        check_kernel_mode(self.kernel_mode)
        if self.state_size < 1:
            raise ValueError(f"state_size must be >= 1, got {self.state_size}")
        lam, p, b, _ = hippo_nplr(self.state_size)
        shape = (self.features, self.state_size)
        (self.lam_log_neg_re, self.lam_im, self.b_re, self.b_im, self.c_re, self.c_im, self.d,
         self.log_dt) = diagonal_params(self, lam, b, shape)
        self.p_re = self.param("p_re", constant(p.real), shape)
        self.p_im = self.param("p_im", constant(p.imag), shape)

    # ---- the continuous and discrete systems -------------------------------------------------------

    def eigenvalues(self) -> jax.Array:
        """Diagonal part ``Λ [H, N]`` complex64 (the normal part's eigenvalues)."""
        return -jnp.exp(self.lam_log_neg_re) + 1j * self.lam_im

    def state_matrix(self) -> jax.Array:
        """Dense continuous-time ``A = Λ - P P^* [H, N, N]`` (for inspection and tests)."""
        p = self.p_re + 1j * self.p_im
        return jax.vmap(jnp.diag)(self.eigenvalues()) - p[:, :, None] * p.conj()[:, None, :]

    def _continuous(self):
        """``(Λ, P, B, C [H, N] complex64, Δ [H, 1])``."""
        dt = jnp.exp(self.log_dt)[:, None]
        return (self.eigenvalues(), self.p_re + 1j * self.p_im, self.b_re + 1j * self.b_im,
                self.c_re + 1j * self.c_im, dt)

    def _discrete_dplr(self) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
        """Bilinear ``Ā = diag(a) + u v^T`` and ``(B̄, C)``: ``(a, u, v, B̄, C)``, each ``[H, N]``, from the
        DPLR form (no dense inverse). The recurrence applies ``Ā`` in ``O(N)`` per channel from these."""
        lam, p, b, c, dt = self._continuous()
        d = 1.0 / (2.0 / dt - lam)  # [H, N]
        dp = d * p
        pd = p.conj() * d
        denom = 1.0 + jnp.sum(p.conj() * dp, axis=-1, keepdims=True)  # [H, 1]
        # M = (2/Δ - Λ + P P^*)^{-1} = D - D P P^* D / (1 + P^* D P) and Ā = (4/Δ) M - I; the diagonal
        # part is formed as (2/Δ + λ) / (2/Δ - λ) rather than by subtracting I, which would cancel most
        # of the float32 digits of Δλ when Δ is small.
        a_diag = (2.0 / dt + lam) * d
        u = -(4.0 / dt) * dp / denom
        b_bar = 2.0 * (d * b - dp * jnp.sum(pd * b, axis=-1, keepdims=True) / denom)
        return a_diag, u, pd, b_bar, c

    def _discrete(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Dense bilinear ``(Ā [H, N, N], B̄ [H, N], C [H, N])`` (the convolution path's ``Ā^L`` needs it)."""
        a_diag, u, v, b_bar, c = self._discrete_dplr()
        return jax.vmap(jnp.diag)(a_diag) + u[:, :, None] * v[:, None, :], b_bar, c

    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.features, self.state_size), jnp.complex64)

    # ---- recurrent path ------------------------------------------------------------------------------

    def _scan_path(self, carry, x, resets):
        h, y = dplr_recurrence(self._discrete_dplr(), 1.0, carry, x, resets.astype(bool))
        return h, y + self.d * x

    def step(self, carry, x_t, reset_t):
        """``x_t [B, H]``, ``reset_t [B]`` -> ``(carry [B, H, N], y_t [B, H])``."""
        h, y = dplr_step(self._discrete_dplr(), 1.0, carry, x_t, reset_t.astype(bool))
        return h, y + self.d * x_t

    # ---- convolution path ----------------------------------------------------------------------------

    def _conv_path(self, carry, x):
        length = x.shape[0]
        lam, p, b, c, dt = self._continuous()
        a_bar, b_bar, _ = self._discrete()
        a_pow = matrix_power(a_bar, length)  # Ā^L [H, N, N]
        c_tilde = c - jnp.einsum("hn,hnm->hm", c, a_pow)  # C (I - Ā^L)

        z = jnp.exp(-2j * np.pi * jnp.arange(length) / length).astype(jnp.complex64)  # [L]
        one_z = 1.0 + z
        # Scaled Cauchy nodes R_n(z) = 1 / (2/Δ (1-z) - (1+z) λ_n): [H, N, L].
        r = 1.0 / ((2.0 / dt)[..., None] * (1.0 - z) - one_z * lam[..., None])
        pc = p.conj()

        def k(u, v):  # Cauchy kernel k_{u,v}(z) [H, L] for per-channel u, v [H, N]
            return jnp.einsum("hn,hnl->hl", u * v, r)

        denom = 1.0 + one_z * k(pc, p)  # [H, L]
        k_cp = k(c_tilde, p)
        kernel_hat = 2.0 * (k(c_tilde, b) - one_z * k_cp * k(pc, b) / denom)
        kernel = jnp.fft.ifft(kernel_hat, axis=-1).real  # [H, L]

        u = jnp.transpose(x, (1, 2, 0))  # [B, H, L]
        y = causal_conv(u, kernel)

        # Incoming carry: the generating function of C Ā^{t+1} h is C̃ (2/Δ (1-z) - (1+z) A)^{-1} v
        # with v = (2/Δ + A) h, A h = Λ h - P (P^* h): the same Woodbury form as the kernel.
        v = (2.0 / dt + lam) * carry - p * jnp.einsum("hn,bhn->bh", pc, carry)[..., None]  # [B, H, N]
        k_cv = jnp.einsum("hn,bhn,hnl->bhl", c_tilde, v, r)
        k_pv = jnp.einsum("hn,bhn,hnl->bhl", pc, v, r)
        carry_hat = k_cv - one_z * k_cp * k_pv / denom
        y = y + jnp.fft.ifft(carry_hat, axis=-1).real
        y = jnp.transpose(y, (2, 0, 1)) + self.d * x

        # Final state Ā^L h + Σ_j Ā^j B̄ u_{L-1-j}. The state "kernel" W(z) = (I - Āz)^{-1} B̄
        #   = 2 R(z) [B - (1+z) P s(z)],  s = k_{P̄,B} / (1 + (1+z) k_{P̄,P}),
        # sampled at the roots of unity and inverse-transformed gives (I - Ā^L)^{-1} Ā^j B̄; its
        # product with the reversed input is Σ_k W(z_k) ifft(u_rev)_k.
        u_hat = jnp.fft.ifft(u[..., ::-1].astype(jnp.complex64), axis=-1)  # [B, H, L]
        s = k(pc, b) / denom  # [H, L]
        driven = 2.0 * (b * jnp.einsum("hnl,bhl->bhn", r, u_hat)
                        - p * jnp.einsum("hnl,bhl->bhn", r, one_z * s * u_hat))
        driven = driven - jnp.einsum("hnm,bhm->bhn", a_pow, driven)  # (I - Ā^L) ·
        final = jnp.einsum("hnm,bhm->bhn", a_pow, carry) + driven
        return final, y

    def scan(self, carry, x, resets):
        """``x [T, B, H]``, ``resets [T, B]`` -> ``(carry [B, H, N], y [T, B, H])``."""
        return run_windowed(self.kernel_mode, resets,
                            lambda: self._conv_path(carry, x),
                            lambda: self._scan_path(carry, x, resets))


def build(
    features: int,
    state_size: int = 64,
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    kernel_mode: str = "auto",
    num_layers: int = 1,
    mix: str = "full_glu",
    dropout: float = 0.0,
    final_norm: bool = False,
) -> SequenceLayer:
    """A stack of ``num_layers`` residual S4 blocks of width ``features``."""
    check_kernel_mode(kernel_mode)

    def layer():
        return S4Layer(features=features, state_size=state_size, dt_min=dt_min, dt_max=dt_max,
                       kernel_mode=kernel_mode)

    return ssm_stack(layer, features, num_layers, mix, dropout, final_norm)
