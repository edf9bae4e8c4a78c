"""S4D (Gu et al. 2022, "On the parameterization and initialization of diagonal state space models").

Every one of the ``H`` channels is its own single-input single-output SSM with a diagonal state
matrix ``Λ = diag(λ_1 .. λ_N)``. Eigenvalues of a real system come in conjugate pairs, so only
``N/2`` of them are kept and the output takes twice the real part:

    h_t = Λ̄ h_{t-1} + B̄ u_t,        y_t = 2 Re(C h_t) + D u_t        (per channel, h_t in C^{N/2})

with zero-order hold ``Λ̄ = exp(Δ Λ)``, ``B̄ = (Λ̄ - 1) / Λ · B`` and a learnable ``log Δ`` per channel.
``Re λ = -exp(·)`` keeps every eigenvalue strictly stable. Initialisations:

* ``legs`` (S4D-LegS): the eigenvalues of HiPPO-N (real part -1/2) and ``B = V^* B_LegS``;
* ``lin`` (S4D-Lin): ``λ_n = -1/2 + i π n``, ``B = 1``;
* ``inv`` (S4D-Inv): ``λ_n = -1/2 + i N/π (N/(2n+1) - 1)``, ``B = 1``.

Two equivalent ways to run a window of length ``L``:

* convolution: ``y = K * u + D u`` with the Vandermonde kernel ``K[l] = 2 Re(Σ_n C_n B̄_n Λ̄_n^l)``
  applied by FFT. A carry ``h_{-1}`` entering the window adds ``2 Re(C Λ̄^{t+1} h_{-1})`` to ``y_t``
  and the final state is ``Λ̄^L h_{-1} + Σ_s Λ̄^{L-1-s} B̄ u_s`` (another Vandermonde product);
* recurrence: the reset-aware linear recurrence, sequential (``ssm.dplr``, S4's loop without the rank-one term)
  or associative (``ssm.scan``), by ``scan_method``.

The convolution cannot express resets, so ``kernel_mode="auto"`` takes it only when the window holds
none (``lax.cond``) and the recurrence otherwise. Complex parameters are stored as real/imaginary
float32 pairs (JAX returns conjugated gradients for complex leaves and optax does not undo it).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import ssm_stack
from ssmrl.ssm.dplr import dplr_recurrence, dplr_step
from ssmrl.ssm.hippo import hippo_nplr
from ssmrl.ssm.scan import SCAN_METHODS, linear_recurrence, resolve_method

KERNEL_MODES = ("auto", "conv", "scan")
S4D_INITS = ("legs", "lin", "inv")


def check_kernel_mode(mode: str) -> None:
    if mode not in KERNEL_MODES:
        raise ValueError(f"unknown kernel_mode {mode!r}; valid: {list(KERNEL_MODES)}")


def causal_conv(u: jax.Array, k: jax.Array) -> jax.Array:
    """Causal convolution ``y[t] = Σ_{s<=t} k[t-s] u[s]`` by FFT: ``u [..., H, L]``, ``k [H, L]``.

    Zero-padding to ``2L`` turns the FFT's circular convolution into a linear one.
    """
    length = u.shape[-1]
    n = 2 * length
    y = jnp.fft.irfft(jnp.fft.rfft(u, n=n) * jnp.fft.rfft(k, n=n), n=n)
    return y[..., :length].astype(u.dtype)


def run_windowed(mode: str, resets: jax.Array, conv_fn: Callable, scan_fn: Callable):
    """Pick the convolution or the recurrence for one window (see ``kernel_mode``)."""
    if mode == "conv":
        return conv_fn()
    if mode == "scan":
        return scan_fn()
    # Both branches are traced; only the taken one runs (under vmap cond becomes a select of both).
    return jax.lax.cond(jnp.any(resets), scan_fn, conv_fn)


def log_dt_initializer(dt_min: float, dt_max: float):
    """``log Δ`` uniform in ``[log dt_min, log dt_max]``."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=np.log(dt_min), maxval=np.log(dt_max))

    return init


def constant(value: np.ndarray):
    """An initializer returning ``value`` broadcast to the requested shape (the same for every channel)."""

    def init(key, shape, dtype=jnp.float32):
        return jnp.broadcast_to(jnp.asarray(value, dtype), shape)

    return init


def s4d_init(init: str, state_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(Λ [N/2], B [N/2])`` complex for one channel under the named initialisation."""
    if init not in S4D_INITS:
        raise ValueError(f"unknown S4D init {init!r}; valid: {list(S4D_INITS)}")
    if state_size < 2 or state_size % 2:
        raise ValueError(f"S4D needs an even state_size >= 2, got {state_size}")
    half = state_size // 2
    n = np.arange(half)
    if init == "legs":
        lam, _, bv, _ = hippo_nplr(state_size)
        # Eigenvalues are sorted by imaginary part: the second half holds one member of every
        # conjugate pair (positive imaginary part).
        return lam[half:], bv[half:]
    if init == "lin":
        lam = -0.5 + 1j * np.pi * n
    else:
        lam = -0.5 + 1j * state_size / np.pi * (state_size / (2 * n + 1) - 1)
    return lam, np.ones(half, np.complex128)


def diagonal_params(module: nn.Module, lam: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> tuple:
    """The parameters S4D and S4 share, created in ``module.setup``.

    ``(log(-Re Λ), Im Λ, Re B, Im B, Re C, Im C)`` of ``shape`` ``[H, N]`` and ``(D, log Δ)`` of ``[H]``.
    Re Λ = -exp(log_neg_re) stays negative whatever the optimiser does; C starts complex normal with
    unit variance (1/2 in each part).
    """
    features = shape[0]
    c_init = nn.initializers.normal(np.sqrt(0.5))
    return (
        module.param("lam_log_neg_re", constant(np.log(-lam.real)), shape),
        module.param("lam_im", constant(lam.imag), shape),
        module.param("b_re", constant(b.real), shape),
        module.param("b_im", constant(b.imag), shape),
        module.param("c_re", c_init, shape),
        module.param("c_im", c_init, shape),
        module.param("d", nn.initializers.normal(1.0), (features,)),
        module.param("log_dt", log_dt_initializer(module.dt_min, module.dt_max), (features,)),
    )


class S4DLayer(SequenceLayer):
    """``H = features`` diagonal SISO SSMs: ``x [T, B, H] -> y [T, B, H]``; carry ``[B, H, N/2]`` complex64.

    Attributes:
      state_size: ``N``, the size of the real system; ``N/2`` complex states are carried.
      dt_min, dt_max: range of the initial per-channel time step (log-uniform).
      init_scheme: ``legs``, ``lin`` or ``inv`` (see module docstring); ``build`` calls it ``init``
        (a Linen field cannot be named ``init``: it would shadow ``Module.init``).
      kernel_mode: ``auto`` (convolution when the window has no resets, else recurrence), ``conv``
        (always convolution: resets are then IGNORED, only for windows known to hold none) or
        ``scan`` (always recurrence).
      scan_method: passed to ``ssm.scan.linear_recurrence``.
    """

    features: int
    state_size: int = 64
    dt_min: float = 0.001
    dt_max: float = 0.1
    init_scheme: str = "legs"
    kernel_mode: str = "auto"
    scan_method: str = "auto"

    @property
    def num_states(self) -> int:
        return self.state_size // 2

    def setup(self):
        check_kernel_mode(self.kernel_mode)
        if self.scan_method not in SCAN_METHODS:
            raise ValueError(f"unknown scan_method {self.scan_method!r}; valid: {list(SCAN_METHODS)}")
        lam, b = s4d_init(self.init_scheme, self.state_size)
        shape = (self.features, self.num_states)
        (self.lam_log_neg_re, self.lam_im, self.b_re, self.b_im, self.c_re, self.c_im, self.d,
         self.log_dt) = diagonal_params(self, lam, b, shape)

    def eigenvalues(self) -> jax.Array:
        """Continuous-time ``Λ [H, N/2]`` complex64."""
        return -jnp.exp(self.lam_log_neg_re) + 1j * self.lam_im

    def _system(self) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """ZOH discretisation: ``(Λ̄, B̄, C, ΔΛ)``, each ``[H, N/2]`` complex64."""
        dt = jnp.exp(self.log_dt)[:, None]
        lam = self.eigenvalues()
        dt_lam = dt * lam
        lam_bar = jnp.exp(dt_lam)
        b_bar = (lam_bar - 1.0) / lam * (self.b_re + 1j * self.b_im)
        return lam_bar, b_bar, self.c_re + 1j * self.c_im, dt_lam

    def initialize_carry(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.features, self.num_states), jnp.complex64)

    def _readout(self, c: jax.Array, h: jax.Array, u: jax.Array) -> jax.Array:
        """``y = 2 Re(Σ_n C_n h_n) + D u`` for ``h [..., H, N/2]``, ``u [..., H]``."""
        return 2.0 * jnp.einsum("hn,...hn->...h", c, h).real + self.d * u

    def _scan_path(self, carry, x, resets):
        lam_bar, b_bar, c, _ = self._system()
        if resolve_method(self.scan_method) == "sequential":
            # Input and readout formed inside the loop: no [T, B, H, N/2] arrays (bench/scan.py).
            h, y = dplr_recurrence((lam_bar, None, None, b_bar, c), 2.0, carry, x, resets.astype(bool))
            return h, y + self.d * x
        bu = x.astype(jnp.complex64)[..., None] * b_bar  # [T, B, H, N/2]
        carry, h = linear_recurrence(lam_bar, bu, resets, carry, self.scan_method)
        return carry, self._readout(c, h, x)

    def _conv_path(self, carry, x):
        lam_bar, b_bar, c, dt_lam = self._system()
        length = x.shape[0]
        # Vandermonde matrix Λ̄^l = exp(ΔΛ l), l = 0..L-1: [H, N/2, L].
        vander = jnp.exp(dt_lam[..., None] * jnp.arange(length, dtype=jnp.float32))
        kernel = 2.0 * jnp.einsum("hn,hnl->hl", c * b_bar, vander).real
        u = jnp.transpose(x, (1, 2, 0))  # [B, H, L]
        y = causal_conv(u, kernel)
        # Incoming carry: y_t += 2 Re(C Λ̄^{t+1} h_{-1}).
        y = y + 2.0 * jnp.einsum("hn,bhn,hnl->bhl", c, lam_bar * carry, vander).real
        y = jnp.transpose(y, (2, 0, 1)) + self.d * x
        # Final state: Λ̄^L h_{-1} + B̄ Σ_s Λ̄^{L-1-s} u_s (reversed Vandermonde).
        driven = jnp.einsum("hnl,bhl->bhn", vander[..., ::-1], u.astype(jnp.complex64))
        final = jnp.exp(dt_lam * length) * carry + b_bar * driven
        return final, y

    def scan(self, carry, x, resets):
        """``x [T, B, H]``, ``resets [T, B]`` -> ``(carry [B, H, N/2], y [T, B, H])``."""
        return run_windowed(self.kernel_mode, resets,
                            lambda: self._conv_path(carry, x),
                            lambda: self._scan_path(carry, x, resets))

    def step(self, carry, x_t, reset_t):
        """``x_t [B, H]``, ``reset_t [B]`` -> ``(carry, y_t [B, H])``."""
        lam_bar, b_bar, c, _ = self._system()
        h, y = dplr_step((lam_bar, None, None, b_bar, c), 2.0, carry, x_t, reset_t.astype(bool))
        return h, y + self.d * x_t


def build(
    features: int,
    state_size: int = 64,
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    init: str = "legs",
    kernel_mode: str = "auto",
    scan_method: str = "auto",
    num_layers: int = 1,
    mix: str = "full_glu",
    dropout: float = 0.0,
    final_norm: bool = False,
) -> SequenceLayer:
    """A stack of ``num_layers`` residual S4D blocks of width ``features``."""
    check_kernel_mode(kernel_mode)
    s4d_init(init, state_size)  # validate early, before any tracing

    def layer():
        return S4DLayer(features=features, state_size=state_size, dt_min=dt_min, dt_max=dt_max, init_scheme=init,
                        kernel_mode=kernel_mode, scan_method=scan_method)

    return ssm_stack(layer, features, num_layers, mix, dropout, final_norm)
