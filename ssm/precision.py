"""Matmul precision: f32 everywhere (the default), or bf16 operands with f32 accumulation.

    with matmul_precision("bf16"):
        y = model.apply(params, carry, x, resets, method="scan")

Inside the scope every ``nn.Dense`` (with default dtype and dot_general) and every product a layer
writes as ``matmul(x, w)`` casts both operands to bfloat16 and accumulates in float32
(``preferred_element_type``): outputs, parameters, gradients and everything that is not a matmul
stay float32. The backward products run in bf16 too (the incoming cotangent is cast), so a gradient
step costs bf16 matmuls only. On CPUs with AMX (``amx_bf16``) and on GPUs these are several times
cheaper than f32 ones.

One exception, on the CPU only: the weight gradient (a contraction over the batch axes) multiplies the
same bf16 values in f32. The products of bf16 numbers are exact in f32, so the result is the same up to
summation order. XLA's CPU backend computes such contractions in f32 anyway (standalone it converts
the operands), but after it folds a transposed weight's gradient into the product it could leave one in
bf16 for a runtime kernel that has no bf16 x bf16 -> f32 form (``UNIMPLEMENTED ... DotThunk``): PPO
with S5 or LRU failed so on the CPU with two or more seeds, or without a vmap (docs/RESULTS.md, #14).

The scope is read when a function is traced, so enter it inside the jitted function (a module
method, a loss), never around a call of an already-compiled one.
"""

from __future__ import annotations

import contextlib
import contextvars

import flax.linen as nn
import jax
import jax.numpy as jnp

PRECISIONS = ("f32", "bf16")
_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar("ssmrl_matmul_precision", default="f32")


def current() -> str:
    """The precision of the innermost ``matmul_precision`` scope (``"f32"`` outside any)."""
    return _PRECISION.get()


def _contract(a: jax.Array, b: jax.Array, a_dims, b_dims) -> jax.Array:
    return jax.lax.dot_general(a, b, ((a_dims, b_dims), ((), ())), preferred_element_type=jnp.float32)


@jax.custom_vjp
def bf16_matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x [..., K] @ w [K, N]`` with bf16 operands and f32 accumulation; f32 output."""
    return _contract(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), (x.ndim - 1,), (0,))


def _bf16_matmul_fwd(x, w):
    xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    return _contract(xb, wb, (x.ndim - 1,), (0,)), (xb, wb)


def _bf16_matmul_bwd(residuals, g):
    xb, wb = residuals
    gb = g.astype(jnp.bfloat16)
    dx = _contract(gb, wb, (gb.ndim - 1,), (1,))  # [..., N] x [K, N] -> [..., K]
    lead = tuple(range(xb.ndim - 1))

    def weight_gradient(a, b):  # [..., K] x [..., N] -> [K, N]
        return _contract(a, b, lead, lead)

    dw = jax.lax.platform_dependent(
        xb, gb, cpu=lambda a, b: weight_gradient(a.astype(jnp.float32), b.astype(jnp.float32)),
        default=weight_gradient)
    return dx, dw


bf16_matmul.defvjp(_bf16_matmul_fwd, _bf16_matmul_bwd)


def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x [..., K] @ w [K, N]`` at the current precision (plain ``x @ w`` in f32 or for non-f32 operands)."""
    if current() == "bf16" and x.dtype == jnp.float32 and w.dtype == jnp.float32 and w.ndim == 2:
        return bf16_matmul(x, w)
    return x @ w


def _dense_interceptor(next_fun, args, kwargs, context):
    module = context.module
    if (current() == "f32" or type(module) is not nn.Dense or context.method_name != "__call__"
            or module.is_initializing() or module.dot_general is not None or module.dot_general_cls is not None
            or module.dtype not in (None, jnp.float32) or len(args) != 1 or kwargs):
        return next_fun(*args, **kwargs)
    params = module.variables["params"]
    y = matmul(args[0], params["kernel"])
    return y + params["bias"] if module.use_bias else y


@contextlib.contextmanager
def matmul_precision(precision: str):
    """Run the matmuls traced inside at ``precision`` (one of ``PRECISIONS``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {list(PRECISIONS)}")
    token = _PRECISION.set(precision)
    try:
        if precision == "f32":
            yield
        else:
            with nn.intercept_methods(_dense_interceptor):
                yield
    finally:
        _PRECISION.reset(token)


def dense_group(layers, x: jax.Array) -> list[jax.Array]:
    """``[layer(x) for layer in layers]`` for ``nn.Dense`` layers reading the same ``x``, as one matmul.

    The kernels are put side by side at apply time, so the parameters keep their names and shapes
    (checkpoints are unchanged) while the arithmetic runs as one ``[..., K] x [K, sum N]`` product,
    at the current precision: fewer, larger matmuls. While initialising, the layers run one by one.
    """
    if any(layer.is_initializing() for layer in layers):
        return [layer(x) for layer in layers]
    params = [layer.variables["params"] for layer in layers]
    kernel = jnp.concatenate([p["kernel"] for p in params], axis=1)
    bias = jnp.concatenate([p["bias"] for p in params])
    sizes = [p["kernel"].shape[1] for p in params]
    y = matmul(x, kernel) + bias
    return jnp.split(y, [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)], axis=-1)
