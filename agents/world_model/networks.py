"""Conv encoder / decoder for 64x64 RGB frames and the MLP heads (LayerNorm + SiLU, DreamerV3 style)."""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp


def preprocess(obs: jax.Array) -> jax.Array:
    """uint8 frames -> float32 in [-0.5, 0.5]."""
    return obs.astype(jnp.float32) / 255.0 - 0.5


class Encoder(nn.Module):
    """``obs [..., 64, 64, 3] uint8 -> features [..., (64 / 2^(L-1))^2 * channels[-1]]``.

    The first conv keeps the resolution, every later one halves it (Drama: 16/32/48/64/64 -> 1024).
    """

    channels: Sequence[int]
    kernel: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        chex.assert_shape(obs, (..., 64, 64, 3))
        lead = obs.shape[:-3]
        x = preprocess(obs).reshape(-1, 64, 64, 3)
        for i, c in enumerate(self.channels):
            x = nn.Conv(c, (self.kernel, self.kernel), strides=1 if i == 0 else 2, use_bias=False)(x)
            x = nn.silu(nn.LayerNorm()(x))
        return x.reshape(*lead, -1)


class Decoder(nn.Module):
    """``features [..., F] -> frames [..., 64, 64, 3]`` in the encoder's [-0.5, 0.5] scale (mirror of it)."""

    channels: Sequence[int]
    kernel: int

    @nn.compact
    def __call__(self, feat: jax.Array) -> jax.Array:
        lead = feat.shape[:-1]
        side = 64 // 2 ** (len(self.channels) - 1)
        x = nn.Dense(side * side * self.channels[-1])(feat.reshape(-1, feat.shape[-1]))
        x = nn.silu(nn.LayerNorm()(x)).reshape(-1, side, side, self.channels[-1])
        for c in reversed(self.channels[:-1]):
            x = nn.ConvTranspose(c, (self.kernel, self.kernel), strides=(2, 2), use_bias=False)(x)
            x = nn.silu(nn.LayerNorm()(x))
        x = nn.Conv(3, (self.kernel, self.kernel))(x)
        return x.reshape(*lead, 64, 64, 3)


class MLP(nn.Module):
    """``layers`` x (Dense, LayerNorm, SiLU) then a Dense to ``out``; ``zero_out`` zero-initialises the
    output layer (reward and critic heads start by predicting 0, which keeps early returns sane)."""

    hidden: int
    layers: int
    out: int
    zero_out: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(self.layers):
            x = nn.silu(nn.LayerNorm()(nn.Dense(self.hidden, use_bias=False)(x)))
        init = nn.initializers.zeros if self.zero_out else nn.initializers.lecun_normal()
        return nn.Dense(self.out, kernel_init=init)(x)
