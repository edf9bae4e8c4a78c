"""A 2-D SAME convolution whose gradients XLA's CPU backend computes fast.

XLA's CPU backend computes a conv's weight gradient ``dW[i, j] = sum_{n, y, x} X_pad[n, s y + i, s x + j]^T
dY[n, y, x]`` as a convolution of ``X`` with ``dY`` as the kernel (a huge kernel, a ``k x k`` output) on a
slow path: for the Drama decoder's 32 -> 4 x 16 channel layer at 32x32 (128 frames) 2.6 s, 21x its forward.
The same sum is ``k x k`` matmuls, one per kernel tap: ``dW[i, j] = X_ij^T dY`` with ``X_ij [N Ho Wo, C_in]`` the
input's window shifted by the tap, 0.22 s. (One matmul over the im2col patches, all ``k x k`` windows side by
side, computes the same in one product but pays for writing the patches: 1.0-2.6x slower per Drama and small
preset layer.) It wins when both channel counts are at least :data:`MATMUL_MIN_CHANNELS`; with 3 image channels on
either side XLA's own path is as fast or faster (``python bench/conv_grads.py`` times every layer both ways).

The input gradient of a strided conv is a transposed conv, XLA's slow path again (155 ms for the small
preset's 8 -> 16 channel stride-2 layer at 64x64, 128 frames; 458 ms for Drama's 16 -> 32). Each of its
``s x s`` output phases is a stride-1 conv of ``dY`` with the kernel taps of that phase, so the whole gradient
is one stride-1 conv to ``s^2 C`` channels, then depth-to-space (:func:`phase_input_grad`): 14 and 105 ms.

The forward pass stays XLA's, and on other backends (cuDNN and friends) so do both gradients: the choice is
made per backend when the function is lowered.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")
WEIGHT_GRADS = ("matmul", "xla")
MATMUL_MIN_CHANNELS = 8


def _pads(x_shape: tuple[int, ...], k: int, stride: int) -> list[tuple[int, int]]:
    return lax.padtype_to_pads(x_shape[1:3], (k, k), (stride, stride), "SAME")


def xla_conv(x: jax.Array, w: jax.Array, stride: int) -> jax.Array:
    """``x [N, H, W, C], w [k, k, C, O] -> [N, ceil(H / s), ceil(W / s), O]``: XLA's SAME conv, gradients and all."""
    return lax.conv_general_dilated(x, w, (stride, stride), _pads(x.shape, w.shape[0], stride), dimension_numbers=NHWC)


def matmul_weight_grad(x: jax.Array, dy: jax.Array, k: int, stride: int) -> jax.Array:
    """``x [N, H, W, C], dy [N, Ho, Wo, O] -> dW [k, k, C, O]`` of the SAME conv, one matmul per kernel tap."""
    (pt, pb), (pl, pr) = _pads(x.shape, k, stride)
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, ho, wo, o = dy.shape
    span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
    dy = dy.reshape(n * ho * wo, o)
    taps = [xp[:, i:i + span_h:stride, j:j + span_w:stride].reshape(n * ho * wo, -1).T @ dy
            for i in range(k) for j in range(k)]
    return jnp.stack(taps).reshape(k, k, x.shape[-1], o)


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
    """``[N, h, w, b^2 C] -> [N, b h, b w, C]``: channel block ``(i, j)`` becomes pixel ``(b y + i, b x + j)``."""
    n, h, w, cb = x.shape
    c = cb // block ** 2
    x = x.reshape(n, h, w, block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, block * h, block * w, c)


def phase_input_grad(x_shape: tuple[int, ...], w: jax.Array, dy: jax.Array, stride: int) -> jax.Array:
    """``dX [N, H, W, C]`` of :func:`xla_conv` for the cotangent ``dy [N, Ho, Wo, O]``, as one stride-1 conv.

    With the kernel zero-padded to ``s q`` taps (``q = ceil(k / s)``) and ``X_pad`` the SAME-padded input,
    ``dX_pad[s m + r] = sum_{t < q} dY[m - t] W[s t + r]`` per axis: phase ``r`` is a full correlation of ``dY``
    with the taps ``W[s t + r]`` reversed. The ``s^2`` phases are the output channels of one VALID conv of
    ``dY`` (padded by ``q - 1``), interleaved by depth-to-space and cropped to ``X``."""
    k, _, c, o = w.shape
    (pt, _), (pl, _) = _pads(x_shape, k, stride)
    q = math.ceil(k / stride)
    w = jnp.pad(w, ((0, stride * q - k), (0, stride * q - k), (0, 0), (0, 0)))
    w = w.reshape(q, stride, q, stride, c, o)[::-1, :, ::-1]              # [t_h, r_h, t_w, r_w, C, O], taps reversed
    w = w.transpose(0, 2, 5, 1, 3, 4).reshape(q, q, o, stride * stride * c)  # phases (r_h, r_w, C) as channels
    dy = jnp.pad(dy, ((0, 0), (q - 1, q - 1), (q - 1, q - 1), (0, 0)))
    dx_pad = depth_to_space(lax.conv_general_dilated(dy, w, (1, 1), "VALID", dimension_numbers=NHWC), stride)
    return dx_pad[:, pt:pt + x_shape[1], pl:pl + x_shape[2]]


def xla_input_grad(x: jax.Array, w: jax.Array, dy: jax.Array, stride: int) -> jax.Array:
    """``dX [N, H, W, C]`` of :func:`xla_conv` for the cotangent ``dy``: XLA's own."""
    return jax.vjp(lambda x_: xla_conv(x_, w, stride), x)[1](dy)[0]


def xla_weight_grad(x: jax.Array, w: jax.Array, dy: jax.Array, stride: int) -> jax.Array:
    """``dW [k, k, C, O]`` of :func:`xla_conv` for the cotangent ``dy``: XLA's own."""
    return jax.vjp(lambda w_: xla_conv(x, w_, stride), w)[1](dy)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_matmul_grad(x: jax.Array, w: jax.Array, stride: int) -> jax.Array:
    """``x [N, H, W, C], w [k, k, C, O] -> [N, ceil(H / s), ceil(W / s), O]`` (SAME). On the CPU its weight gradient
    is a matmul per tap where both channel counts are >= :data:`MATMUL_MIN_CHANNELS` (else XLA's), and a strided
    conv's input gradient is :func:`phase_input_grad`."""
    return xla_conv(x, w, stride)


def _forward(x, w, stride):
    return xla_conv(x, w, stride), (x, w)


def _backward(stride, residuals, dy):
    x, w = residuals
    k, _, c_in, c_out = w.shape
    if min(c_in, c_out) < MATMUL_MIN_CHANNELS:
        dw = xla_weight_grad(x, w, dy, stride)
    else:
        dw = lax.platform_dependent(x, dy, cpu=lambda x, dy: matmul_weight_grad(x, dy, k, stride),
                                    default=lambda x, dy: xla_weight_grad(x, w, dy, stride))
    if stride == 1:
        dx = xla_input_grad(x, w, dy, stride)
    else:
        dx = lax.platform_dependent(w, dy, cpu=lambda w, dy: phase_input_grad(x.shape, w, dy, stride),
                                    default=lambda w, dy: xla_input_grad(x, w, dy, stride))
    return dx, dw


conv2d_matmul_grad.defvjp(_forward, _backward)


class Conv(nn.Module):
    """``nn.Conv`` (square kernel, SAME, NHWC) with the gradients chosen by ``weight_grad``: ``matmul``
    (:func:`conv2d_matmul_grad`'s, on the CPU) or ``xla``. Named ``Conv`` so parameter trees keep ``nn.Conv``'s
    names and initialisation."""

    features: int
    kernel_size: int
    stride: int = 1
    use_bias: bool = True
    weight_grad: str = "matmul"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        w = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
        y = (conv2d_matmul_grad if self.weight_grad == "matmul" else xla_conv)(x, w, self.stride)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y
