"""Mamba-2: the SSD layer of Dao & Gu (2024), with episode resets.

Per step, with ``d = expand * features`` channels split into ``heads`` heads of ``P = head_dim``:

    z, xBC, Δ = in_proj(u_t)                      # [d], [d + 2N], [heads]
    x, B, C   = silu(conv1d_causal(xBC))          # depthwise, kernel K; x [heads, P], B, C [N]
    Δ         = softplus(Δ + dt_bias)             # one step size per head
    h_t       = exp(Δ A_h) h_{t-1} + Δ x ⊗ B       # [heads, P, N], scalar decay per head
    y_t       = out_proj(RMSNorm((h_t C + D_h x) * silu(z)))

The scalar decay makes the sequence map a decay-masked attention with ``C_t·B_s`` scores, which the
chunked SSD algorithm (:mod:`ssm.ssd`) evaluates with matmuls. ``scan_method`` picks ``chunked``
(that algorithm), or ``sequential`` / ``associative`` (the per-step recurrence through
``ssm.scan.linear_recurrence``); all agree to float32 tolerance. ``auto`` is ``chunked`` on every
backend: on a shared 2-core CPU, forward+backward of the SSD core at B16 heads16 P64 N16 L256 took
0.52 s chunked (Q=64; Q=32 0.65 s, Q=128 0.80 s), 4.9 s sequential and 1.6 s associative, and of
the whole layer (features 512) 2.3 s / 5.7 s / 3.5 s. On one H200 (bench/gpu.py, the whole layer at
batch 16, features 128) chunked beat associative 1.7x / 3.2x / 4.8x at L 64 / 1024 / 4096, in 30-45%
of the memory (docs/RESULTS.md).

The carry is ``MambaCarry(state [B, heads, P, N], conv [B, K-1, d + 2N])``; resets clear both, as in
:mod:`ssm.mamba`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.blocks import ssm_stack
from ssmrl.ssm.mamba import MambaCarry, causal_conv, causal_conv_step, dt_bias_init, uniform_init
from ssmrl.ssm.scan import linear_step
from ssmrl.ssm.ssd import ssd_chunked, ssd_recurrence

MAMBA2_SCAN_METHODS = ("auto", "chunked", "sequential", "associative")


def a_log_init(low: float = 1.0, high: float = 16.0):
    """``A_log = log(U(low, high))`` per head (Mamba-2's default range)."""

    def init(key, shape, dtype=jnp.float32):
        return jnp.log(jax.random.uniform(key, shape, jnp.float32, low, high)).astype(dtype)

    return init


class Mamba2Layer(SequenceLayer):
    """Mamba-2 (SSD) mixer, ``x [T, B, features] -> y [T, B, features]``.

    Attributes:
      features: input and output width.
      state_size: ``N``.
      expand: ``d_inner = expand * features``.
      head_dim: ``P``, clipped to ``d_inner``; ``d_inner`` must be a multiple of it.
      conv_size: kernel ``K`` of the depthwise causal conv over ``(x, B, C)``.
      chunk_size: SSD chunk length (``chunked`` only).
      dt_min, dt_max: range of the initial step sizes.
      scan_method: ``auto`` (= ``chunked``), ``chunked``, ``sequential`` or ``associative``.
    """

    features: int
    state_size: int = 16
    expand: int = 2
    head_dim: int = 64
    conv_size: int = 4
    chunk_size: int = 64
    dt_min: float = 0.001
    dt_max: float = 0.1
    scan_method: str = "auto"
    norm_eps: float = 1e-5

    @property
    def d_inner(self) -> int:
        return self.expand * self.features

    @property
    def p(self) -> int:
        return min(self.head_dim, self.d_inner)

    @property
    def heads(self) -> int:
        return self.d_inner // self.p

    def setup(self):
        if self.scan_method not in MAMBA2_SCAN_METHODS:
            raise ValueError(
                f"unknown scan method {self.scan_method!r}; valid: {list(MAMBA2_SCAN_METHODS)}")
        if self.d_inner % self.p:
            raise ValueError(f"d_inner={self.d_inner} is not a multiple of head_dim={self.p}")
        if self.conv_size < 1 or self.chunk_size < 1:
            raise ValueError(
                f"conv_size and chunk_size must be >= 1, got {self.conv_size}, {self.chunk_size}")
        d, n, k, heads = self.d_inner, self.state_size, self.conv_size, self.heads
        self.in_proj = nn.Dense(2 * d + 2 * n + heads, use_bias=False)
        self.conv_kernel = self.param("conv_kernel", uniform_init(k ** -0.5), (k, d + 2 * n))
        self.conv_bias = self.param("conv_bias", uniform_init(k ** -0.5), (d + 2 * n,))
        self.dt_bias = self.param("dt_bias", dt_bias_init(self.dt_min, self.dt_max), (heads,))
        self.A_log = self.param("A_log", a_log_init(), (heads,))
        self.D = self.param("D", nn.initializers.ones, (heads,))
        self.norm_scale = self.param("norm_scale", nn.initializers.ones, (d,))
        self.out_proj = nn.Dense(self.features, use_bias=False)

    def initialize_carry(self, batch_size: int) -> MambaCarry:
        d, n = self.expand * self.features, self.state_size
        p = min(self.head_dim, d)
        return MambaCarry(
            state=jnp.zeros((batch_size, d // p, p, n), jnp.float32),
            conv=jnp.zeros((batch_size, self.conv_size - 1, d + 2 * n), jnp.float32),
        )

    def _project(self, u: jax.Array):
        """``in_proj`` split into ``z [..., d]``, conv input ``xBC [..., d + 2N]``, ``Δ [..., heads]``."""
        d, n = self.d_inner, self.state_size
        z, xbc, dt = jnp.split(self.in_proj(u), [d, 2 * d + 2 * n], axis=-1)
        return z, xbc, jax.nn.softplus(dt + self.dt_bias)

    def _split_conv(self, xbc: jax.Array):
        d, n = self.d_inner, self.state_size
        x, b, c = jnp.split(nn.silu(xbc), [d, d + n], axis=-1)
        return x.reshape(x.shape[:-1] + (self.heads, self.p)), b, c

    def _output(self, y: jax.Array, z: jax.Array) -> jax.Array:
        """``out_proj(RMSNorm(y * silu(z)))`` (gate before norm, as in Mamba-2); ``y [..., heads, P]``."""
        g = y.reshape(z.shape) * nn.silu(z)
        g = g * jax.lax.rsqrt(jnp.mean(g * g, axis=-1, keepdims=True) + self.norm_eps) * self.norm_scale
        return self.out_proj(g)

    def scan(self, carry: MambaCarry, x: jax.Array, resets: jax.Array):
        """``x [T, B, H]``, ``resets [T, B]`` -> ``(carry, y [T, B, H])``."""
        z, xbc, dt = self._project(x)
        xbc, conv = causal_conv(xbc, carry.conv, resets, self.conv_kernel, self.conv_bias)
        xh, b, c = self._split_conv(xbc)  # [T, B, heads, P], [T, B, N] x2
        a = -jnp.exp(self.A_log)
        method = "chunked" if self.scan_method == "auto" else self.scan_method
        if method == "chunked":
            # the few-step recurrence over chunks: sequential on CPU, associative elsewhere
            state, y = ssd_chunked(xh, dt, a, b, c, resets, carry.state, self.chunk_size, "auto")
        else:
            state, y = ssd_recurrence(xh, dt, a, b, c, resets, carry.state, method)
        y = y + self.D[:, None] * xh
        return MambaCarry(state, conv), self._output(y, z)

    def step(self, carry: MambaCarry, x_t: jax.Array, reset_t: jax.Array):
        """``x_t [B, H]``, ``reset_t [B]`` -> ``(carry, y_t [B, H])``."""
        z, xbc, dt = self._project(x_t)
        xbc, conv = causal_conv_step(xbc, carry.conv, reset_t, self.conv_kernel, self.conv_bias)
        xh, b, c = self._split_conv(xbc)  # [B, heads, P], [B, N] x2
        decay = jnp.exp(dt * -jnp.exp(self.A_log))[..., None, None]  # [B, heads, 1, 1]
        inp = (xh * dt[..., None])[..., None] * b[:, None, None, :]  # [B, heads, P, N]
        state = linear_step(decay, inp, reset_t, carry.state)
        y = jnp.einsum("bhpn,bn->bhp", state, c) + self.D[:, None] * xh
        return MambaCarry(state, conv), self._output(y, z)


def build(
    features: int,
    state_size: int = 16,
    expand: int = 2,
    head_dim: int = 64,
    conv_size: int = 4,
    chunk_size: int = 64,
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    num_layers: int = 1,
    mix: str = "none",
    dropout: float = 0.0,
    final_norm: bool = False,
    scan_method: str = "auto",
) -> SequenceLayer:
    """A stack of pre-norm residual blocks around :class:`Mamba2Layer` (``mix`` defaults to ``none``:
    the layer gates and normalises itself)."""
    if scan_method not in MAMBA2_SCAN_METHODS:
        raise ValueError(f"unknown scan method {scan_method!r}; valid: {list(MAMBA2_SCAN_METHODS)}")
    return ssm_stack(
        lambda: Mamba2Layer(features=features, state_size=state_size, expand=expand, head_dim=head_dim,
                            conv_size=conv_size, chunk_size=chunk_size, dt_min=dt_min, dt_max=dt_max,
                            scan_method=scan_method),
        features=features, num_layers=num_layers, mix=mix, dropout=dropout, final_norm=final_norm,
    )
