"""Mamba: the selective state-space layer of Gu & Dao (2023), with episode resets.

Per step, with ``d = expand * features`` channels and ``N`` states per channel:

    x, z   = in_proj(u_t)                               # two [d] streams
    x      = silu(conv1d_causal(x))                     # depthwise, kernel K, with bias
    Δ, B, C = x_proj(x)                                 # Δ low-rank [R], B, C [N]: input-dependent
    Δ      = softplus(dt_proj(Δ) + dt_bias)              # [d], bias starts in [dt_min, dt_max]
    h_t    = exp(Δ A) * h_{t-1} + (Δ x) ⊗ B             # [d, N], A = -exp(A_log) diagonal
    y_t    = out_proj((h_t C + D x) * silu(z))

The state update is the elementwise linear recurrence of :mod:`ssm.scan`, so the parallel mode runs
it through ``linear_recurrence`` and the step mode through ``linear_step``. The carry is
``MambaCarry(state [B, d, N], conv [B, K-1, d])``: the conv buffer holds the last ``K-1`` conv
inputs, and a reset clears both parts, so no input from before a reset reaches the conv at or after
it. :func:`causal_conv` / :func:`causal_conv_step` implement that reset-aware conv for both modes
(Mamba-2 reuses them).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import ssm_stack
from ssmrl.ssm.scan import SCAN_METHODS, linear_recurrence, linear_step, resolve_method


class MambaCarry(NamedTuple):
    """Recurrent state of a Mamba / Mamba-2 layer: SSM state and the causal-conv input buffer."""

    state: jax.Array  # Mamba [B, d_inner, N]; Mamba-2 [B, heads, head_dim, N]
    conv: jax.Array  # [B, conv_size - 1, conv channels], oldest first


# ---------------------------------------------------------------------------------------------
# Reset-aware depthwise causal convolution
# ---------------------------------------------------------------------------------------------


def causal_conv(x: jax.Array, buffer: jax.Array, resets: jax.Array, kernel: jax.Array,
                bias: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Depthwise causal conv over time that never looks across a reset.

    ``out_t = bias + sum_j kernel[K-1-j] * x_{t-j}`` over lags ``j = 0..K-1``, where ``x_{t-j}`` for
    ``t-j < 0`` comes from ``buffer`` and a lag-``j`` term is dropped when a reset lies in
    ``(t-j, t]`` (the reset at step t clears everything carried into t).

    Args:
      x: ``[T, B, C]`` conv inputs.
      buffer: ``[B, K-1, C]`` inputs of the ``K-1`` steps before ``x`` (oldest first).
      resets: ``[T, B]`` bool.
      kernel: ``[K, C]`` (``kernel[K-1]`` multiplies the current input).
      bias: ``[C]``.
    Returns:
      ``(out [T, B, C], new_buffer [B, K-1, C])``, the buffer zeroed before the last reset.
    """
    k = kernel.shape[0]
    t_len, batch = resets.shape
    xe = jnp.concatenate([jnp.swapaxes(buffer, 0, 1).astype(x.dtype), x], axis=0)  # [T+K-1, B, C]
    # Reset counts, padded by K-1 zeros for the buffer slots: a lag-j input is visible at t iff no
    # reset happened in (t-j, t], i.e. the running count did not change between the two positions.
    counts = jnp.cumsum(resets.astype(jnp.int32), axis=0)
    ce = jnp.concatenate([jnp.zeros((k - 1, batch), jnp.int32), counts], axis=0)  # [T+K-1, B]
    now = ce[k - 1:]
    out = bias + kernel[k - 1] * x
    for j in range(1, k):
        past = xe[k - 1 - j:k - 1 - j + t_len]
        visible = (ce[k - 1 - j:k - 1 - j + t_len] == now)[..., None]
        out = out + kernel[k - 1 - j] * jnp.where(visible, past, 0.0)
    tail = xe[t_len:]  # the last K-1 inputs
    keep = (ce[t_len:] == ce[-1])[..., None]  # no reset after them
    new_buffer = jnp.swapaxes(jnp.where(keep, tail, 0.0), 0, 1)
    return out, new_buffer


def causal_conv_step(x_t: jax.Array, buffer: jax.Array, reset_t: jax.Array, kernel: jax.Array,
                     bias: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One step of :func:`causal_conv`: ``x_t [B, C]``, ``buffer [B, K-1, C]``, ``reset_t [B]``."""
    buffer = jnp.where(reset_t[:, None, None], 0.0, buffer.astype(x_t.dtype))
    window = jnp.concatenate([buffer, x_t[:, None]], axis=1)  # [B, K, C], oldest first
    out = jnp.sum(window * kernel, axis=1) + bias
    return out, window[:, 1:]


# ---------------------------------------------------------------------------------------------
# Initialisers (no orthogonal ones: batched QR deadlocks XLA CPU under vmap)
# ---------------------------------------------------------------------------------------------


def uniform_init(bound: float):
    """``U(-bound, bound)``."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dt_bias_init(dt_min: float, dt_max: float, floor: float = 1e-4):
    """Bias whose softplus is log-uniform in ``[dt_min, dt_max]`` (inverse softplus of a sample)."""
    if not 0.0 < dt_min <= dt_max:
        raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")

    def init(key, shape, dtype=jnp.float32):
        u = jax.random.uniform(key, shape, jnp.float32)
        dt = jnp.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = jnp.maximum(dt, floor)
        # softplus^-1(dt) = log(exp(dt) - 1) = dt + log(1 - exp(-dt)), stable for small dt
        return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)

    return init


def s4d_real_log_init(key, shape, dtype=jnp.float32):
    """``A_log [..., N] = log(1..N)``: S4D-real, ``A = -(n+1)`` for every channel (key unused)."""
    del key
    n = shape[-1]
    return jnp.broadcast_to(jnp.log(jnp.arange(1, n + 1, dtype=jnp.float32)), shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------------------------


class MambaLayer(SequenceLayer):
    """Mamba selective-SSM mixer, ``x [T, B, features] -> y [T, B, features]``.

    Attributes:
      features: input and output width.
      state_size: ``N``, states per inner channel.
      expand: ``d_inner = expand * features``.
      conv_size: kernel ``K`` of the depthwise causal conv.
      dt_rank: rank of the Δ projection, ``"auto"`` = ``ceil(features / 16)``.
      dt_min, dt_max: range of the initial step sizes.
      scan_method: ``auto`` / ``sequential`` / ``associative`` (see :mod:`ssm.scan`).
    """

    features: int
    state_size: int = 16
    expand: int = 2
    conv_size: int = 4
    dt_rank: Union[int, str] = "auto"
    dt_min: float = 0.001
    dt_max: float = 0.1
    scan_method: str = "auto"

    @property
    def d_inner(self) -> int:
        return self.expand * self.features

    @property
    def rank(self) -> int:
        if self.dt_rank == "auto":
            return math.ceil(self.features / 16)
        if not isinstance(self.dt_rank, int) or self.dt_rank < 1:
            raise ValueError(f"dt_rank must be 'auto' or a positive int, got {self.dt_rank!r}")
        return self.dt_rank

    def setup(self):
        if self.scan_method not in SCAN_METHODS:
            raise ValueError(f"unknown scan method {self.scan_method!r}; valid: {list(SCAN_METHODS)}")
        if self.conv_size < 1:
            raise ValueError(f"conv_size must be >= 1, got {self.conv_size}")
        d, n, k, r = self.d_inner, self.state_size, self.conv_size, self.rank
        self.in_proj = nn.Dense(2 * d, use_bias=False)
        # PyTorch's Conv1d default for a depthwise kernel: U(+-1/sqrt(fan_in)), fan_in = K.
        self.conv_kernel = self.param("conv_kernel", uniform_init(k ** -0.5), (k, d))
        self.conv_bias = self.param("conv_bias", uniform_init(k ** -0.5), (d,))
        self.x_proj = nn.Dense(r + 2 * n, use_bias=False)
        self.dt_proj = nn.Dense(d, kernel_init=uniform_init(r ** -0.5),
                                bias_init=dt_bias_init(self.dt_min, self.dt_max))
        self.A_log = self.param("A_log", s4d_real_log_init, (d, n))
        self.D = self.param("D", nn.initializers.ones, (d,))
        self.out_proj = nn.Dense(self.features, use_bias=False)

    def initialize_carry(self, batch_size: int) -> MambaCarry:
        d = self.expand * self.features
        return MambaCarry(
            state=jnp.zeros((batch_size, d, self.state_size), jnp.float32),
            conv=jnp.zeros((batch_size, self.conv_size - 1, d), jnp.float32),
        )

    def _selective(self, u: jax.Array):
        """Input-dependent ``Δ [..., d]``, ``B, C [..., N]`` from the conv output ``u [..., d]``."""
        r, n = self.rank, self.state_size
        proj = self.x_proj(u)
        dt, b, c = jnp.split(proj, [r, r + n], axis=-1)
        return jax.nn.softplus(self.dt_proj(dt)), b, c

    def _step_state(self, a_mat, dt, u, b, reset, state):
        """One selective-SSM step over ``dt, u [B, d]``, ``b [B, N]``: the new state ``[B, d, N]``."""
        decay = jnp.exp(dt[..., None] * a_mat)
        inp = (dt * u)[..., None] * b[:, None, :]
        return linear_step(decay, inp, reset, state)

    def _recurrence(self, a_mat, dt, u, b, c, resets, state):
        """``dt, u [T, B, d]``, ``b, c [T, B, N]`` -> ``(state [B, d, N], C·h [T, B, d])``.

        On the sequential path the per-step decay, input and readout are formed inside the loop, so no
        ``[T, B, d, N]`` array is built: bench/scan.py measured this 1.5-1.7x faster than the
        materialised form on CPU (fwd+bwd, B16 H128, L 256-1024), at 40% of the memory.
        """
        if resolve_method(self.scan_method) == "sequential":
            def body(h, inputs):
                dt_t, u_t, b_t, c_t, r_t = inputs
                h = self._step_state(a_mat, dt_t, u_t, b_t, r_t, h)
                return h, jnp.einsum("bdn,bn->bd", h, c_t)

            return jax.lax.scan(body, state, (dt, u, b, c, resets))
        decay = jnp.exp(dt[..., None] * a_mat)  # [T, B, d, N]
        inp = (dt * u)[..., None] * b[..., None, :]  # [T, B, d, N]
        state, h = linear_recurrence(decay, inp, resets, state, self.scan_method)
        return state, jnp.einsum("tbdn,tbn->tbd", h, c)

    def scan(self, carry: MambaCarry, x: jax.Array, resets: jax.Array):
        """``x [T, B, H]``, ``resets [T, B]`` -> ``(carry, y [T, B, H])``."""
        xs, z = jnp.split(self.in_proj(x), 2, axis=-1)
        u, conv = causal_conv(xs, carry.conv, resets, self.conv_kernel, self.conv_bias)
        u = nn.silu(u)
        dt, b, c = self._selective(u)
        state, ch = self._recurrence(-jnp.exp(self.A_log), dt, u, b, c, resets, carry.state)
        y = (ch + self.D * u) * nn.silu(z)
        return MambaCarry(state, conv), self.out_proj(y)

    def step(self, carry: MambaCarry, x_t: jax.Array, reset_t: jax.Array):
        """``x_t [B, H]``, ``reset_t [B]`` -> ``(carry, y_t [B, H])``."""
        xs, z = jnp.split(self.in_proj(x_t), 2, axis=-1)
        u, conv = causal_conv_step(xs, carry.conv, reset_t, self.conv_kernel, self.conv_bias)
        u = nn.silu(u)
        dt, b, c = self._selective(u)
        state = self._step_state(-jnp.exp(self.A_log), dt, u, b, reset_t, carry.state)
        y = (jnp.einsum("bdn,bn->bd", state, c) + self.D * u) * nn.silu(z)
        return MambaCarry(state, conv), self.out_proj(y)

def build(
    features: int,
    state_size: int = 16,
    expand: int = 2,
    conv_size: int = 4,
    dt_rank: Union[int, str] = "auto",
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    num_layers: int = 1,
    mix: str = "none",
    dropout: float = 0.0,
    final_norm: bool = False,
    scan_method: str = "auto",
) -> SequenceLayer:
    """A stack of pre-norm residual blocks around :class:`MambaLayer`.

    The Mamba mixer gates itself (``silu(z)``), so the block's ``mix`` defaults to ``none``: each
    block is ``x + MambaLayer(LayerNorm(x))``.
    """
    if scan_method not in SCAN_METHODS:
        raise ValueError(f"unknown scan method {scan_method!r}; valid: {list(SCAN_METHODS)}")
    return ssm_stack(
        lambda: MambaLayer(features=features, state_size=state_size, expand=expand, conv_size=conv_size,
                           dt_rank=dt_rank, dt_min=dt_min, dt_max=dt_max, scan_method=scan_method),
        features=features, num_layers=num_layers, mix=mix, dropout=dropout, final_norm=final_norm,
    )
