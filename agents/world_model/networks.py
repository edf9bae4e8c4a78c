"""Observation encoders / decoders (convs for images of any size, MLPs for vectors and small grids) and the MLP heads
(LayerNorm + SiLU, DreamerV3 style).

Observations enter the networks through :func:`preprocess`: uint8 pixels to [-0.5, 0.5], anything
else (vectors, MinAtar's 0/1 planes) through symlog, as DreamerV3 does for vector inputs. Decoders
predict in that space; :func:`postprocess` maps a prediction back to the env's units.

Two upsampling layers for the image decoder, chosen by ``decoder``:

* ``subpixel`` (default): a stride-1 conv at the low resolution to ``4 x channels``, then
  depth-to-space. It is the same function class as a stride-2 transposed conv of kernel
  ``2 * ceil(k / 2)`` (each output phase is a conv of the input), but its weight gradient is an
  ordinary conv: XLA CPU computes the weight gradient of a strided transposed conv as a dilated conv
  on a slow path (~18x slower for one Drama decoder layer, see bench/world_model.py).
* ``conv_transpose``: ``nn.ConvTranspose`` with stride 2, the original formulation, kept as the
  baseline the benchmark compares against.

Every other conv is :class:`~ssmrl.agents.world_model.conv.Conv`, whose gradients on the CPU are matmuls and
stride-1 convs (``weight_grad="matmul"``; XLA's own CPU paths for them are up to 11x slower, see conv.py).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.agents.world_model.conv import Conv, depth_to_space
from ssmrl.agents.world_model.distributions import symexp, symlog


def preprocess(obs: jax.Array) -> jax.Array:
    """Env observation -> float32 network input: uint8 pixels to [-0.5, 0.5], the rest symlog."""
    if obs.dtype == jnp.uint8:
        return obs.astype(jnp.float32) / 255.0 - 0.5
    return symlog(obs.astype(jnp.float32))


def postprocess(x: jax.Array, dtype) -> jax.Array:
    """Inverse of :func:`preprocess`: a decoded observation back in the env's units and ``dtype``."""
    if jnp.dtype(dtype) == jnp.uint8:
        return jnp.clip((x + 0.5) * 255.0, 0, 255).astype(jnp.uint8)
    return symexp(x).astype(dtype)


def conv_sizes(height: int, width: int, num_layers: int) -> list[tuple[int, int]]:
    """Spatial size after each encoder layer: the first keeps it, each later stride-2 SAME conv takes
    ``ceil(size / 2)`` (64 -> 64, 32, 16, 8, 4; MinAtar's 10 -> 10, 5, 3, 2, 1)."""
    sizes = [(height, width)]
    for _ in range(num_layers - 1):
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    return sizes


class ImageEncoder(nn.Module):
    """``obs [..., H, W, C] -> features [..., h * w * channels[-1]]`` (``(h, w)`` the last of
    :func:`conv_sizes`); Drama: 16/32/48/64/64 on 64x64x3 -> 4 x 4 x 64 = 1024."""

    obs_shape: tuple[int, ...]
    channels: Sequence[int]
    kernel: int
    weight_grad: str = "matmul"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        lead = obs.shape[:obs.ndim - 3]
        x = preprocess(obs).reshape(-1, *self.obs_shape)
        for i, c in enumerate(self.channels):
            x = Conv(c, self.kernel, stride=1 if i == 0 else 2, use_bias=False, weight_grad=self.weight_grad)(x)
            x = nn.silu(nn.LayerNorm()(x))
        return x.reshape(*lead, -1)


class SubPixelUp(nn.Module):
    """Stride-2 upsampling as a low-resolution conv to ``4 x features`` then depth-to-space:
    ``[N, h, w, C_in] -> [N, 2h, 2w, features]``. Kernel ``ceil(kernel / 2)`` covers the input
    pixels a stride-2 transposed conv of kernel ``kernel`` mixes into each output pixel."""

    features: int
    kernel: int
    weight_grad: str = "matmul"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = math.ceil(self.kernel / 2)
        return depth_to_space(Conv(4 * self.features, k, use_bias=False, weight_grad=self.weight_grad)(x))


class ConvTransposeUp(nn.Module):
    """``nn.ConvTranspose`` with stride 2: ``[N, h, w, C_in] -> [N, 2h, 2w, features]`` (the baseline)."""

    features: int
    kernel: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.ConvTranspose(self.features, (self.kernel, self.kernel), strides=(2, 2), use_bias=False)(x)


# (features, kernel, weight_grad) -> module; the baseline keeps XLA's gradients
UPSAMPLERS: dict[str, Callable[[int, int, str], nn.Module]] = {
    "subpixel": SubPixelUp, "conv_transpose": lambda features, kernel, _: ConvTransposeUp(features, kernel)}


class ImageDecoder(nn.Module):
    """``features [..., F] -> obs [..., H, W, C]`` in :func:`preprocess`'s space, mirroring
    :class:`ImageEncoder`: a Dense to the smallest grid, then stride-2 upsampling layers, each cropped
    to the encoder's size at that depth (so odd sizes like 5 -> 10 -> ... round-trip), then a conv."""

    obs_shape: tuple[int, ...]
    channels: Sequence[int]
    kernel: int
    upsample: str = "subpixel"
    weight_grad: str = "matmul"

    @nn.compact
    def __call__(self, feat: jax.Array) -> jax.Array:
        lead = feat.shape[:-1]
        sizes = conv_sizes(self.obs_shape[0], self.obs_shape[1], len(self.channels))
        (h, w), c = sizes[-1], self.channels[-1]
        x = nn.Dense(h * w * c)(feat.reshape(-1, feat.shape[-1]))
        x = nn.silu(nn.LayerNorm()(x)).reshape(-1, h, w, c)
        up = UPSAMPLERS[self.upsample]
        for (h, w), c in zip(reversed(sizes[:-1]), reversed(self.channels[:-1])):
            x = up(c, self.kernel, self.weight_grad)(x)[:, :h, :w]
            x = nn.silu(nn.LayerNorm()(x))
        x = Conv(self.obs_shape[-1], self.kernel, weight_grad=self.weight_grad)(x)
        return x.reshape(*lead, *self.obs_shape)


class VectorEncoder(nn.Module):
    """``obs [..., *obs_shape] -> features [..., hidden]``: ``layers`` x (Dense, LayerNorm, SiLU) on the
    flattened symlog inputs (R2I on POPGym: one 512-wide layer). ``obs_shape`` is ``[D]``, or a small grid
    such as bsuite Catch's ``[10, 5]``, read as its ``D1 * D2`` cells.

    The first Dense keeps its bias: without one, LayerNorm of ``W x`` equals that of ``W (c x)`` for every ``c > 0``,
    so the features would hold the observation's direction and not its size (a scalar observation: its sign).
    The later layers read LayerNorm's output, of a fixed size, and go without, as every other layer does."""

    obs_shape: tuple[int, ...]
    hidden: int
    layers: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = preprocess(obs)
        x = x.reshape(*x.shape[:x.ndim - len(self.obs_shape)], math.prod(self.obs_shape))
        for i in range(self.layers):
            x = nn.silu(nn.LayerNorm()(nn.Dense(self.hidden, use_bias=i == 0)(x)))
        return x


class VectorDecoder(nn.Module):
    """``features [..., F] -> obs [..., *obs_shape]`` in symlog space: the MLP mirror of :class:`VectorEncoder`."""

    obs_shape: tuple[int, ...]
    hidden: int
    layers: int

    @nn.compact
    def __call__(self, feat: jax.Array) -> jax.Array:
        out = MLP(self.hidden, self.layers, math.prod(self.obs_shape))(feat)
        return out.reshape(*feat.shape[:-1], *self.obs_shape)


class MLP(nn.Module):
    """``layers`` x (Dense, LayerNorm, SiLU), or with ``norm=False`` (Dense with a bias, SiLU), then a Dense to
    ``out``; ``zero_out`` zero-initialises the output layer (reward and critic heads start by predicting 0, which
    keeps early returns sane)."""

    hidden: int
    layers: int
    out: int
    zero_out: bool = False
    norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(self.layers):
            if self.norm:
                x = nn.silu(nn.LayerNorm()(nn.Dense(self.hidden, use_bias=False)(x)))
            else:
                x = nn.silu(nn.Dense(self.hidden)(x))
        init = nn.initializers.zeros if self.zero_out else nn.initializers.lecun_normal()
        return nn.Dense(self.out, kernel_init=init)(x)


def check_observation_shape(obs_shape: tuple[int, ...]) -> None:
    """Raises ``ValueError`` naming ``obs_shape`` unless the networks below support its rank."""
    if len(obs_shape) not in (1, 2, 3):
        raise ValueError(f"observations of shape {obs_shape} are not supported; valid: [D] vectors, [D1, D2] "
                         "grids or [H, W, C] images")


def make_observation_networks(obs_shape: tuple[int, ...], channels: Sequence[int], kernel: int, decoder: str,
                              vector_hidden: int, vector_layers: int,
                              conv_weight_grad: str) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` for observations of ``obs_shape``: convs for ``[H, W, C]`` images, MLPs
    for ``[D]`` vectors and ``[D1, D2]`` grids; any other rank raises ``ValueError``."""
    check_observation_shape(obs_shape)
    if len(obs_shape) == 3:
        return (ImageEncoder(obs_shape, tuple(channels), kernel, conv_weight_grad),
                ImageDecoder(obs_shape, tuple(channels), kernel, decoder, conv_weight_grad))
    return (VectorEncoder(obs_shape, vector_hidden, vector_layers),
            VectorDecoder(obs_shape, vector_hidden, vector_layers))
