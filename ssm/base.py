"""The two-mode contract every sequence layer keeps.

A layer is a Flax Linen module with

* ``initialize_carry(batch_size) -> carry``: a pytree of zeros, meaning "fresh episode"; callable on
  an unbound module (it depends on attributes only).
* ``scan(carry, x, resets) -> (carry, y)``: parallel mode, ``x [T, B, H_in]``, ``resets [T, B]`` bool,
  ``y [T, B, H_out]``. ``resets[t, b]`` replaces the state carried into step t by the initial state.
* ``step(carry, x_t, reset_t) -> (carry, y_t)``: one step, ``x_t [B, H_in]``, ``reset_t [B]`` bool.
* ``__call__(x, resets, carry=None) -> y``: parallel mode from a fresh (or given) carry.

``resets[t, b]`` is the guide's ``first``: True when step t is the first of an episode. The argument keeps
the contract's name (ARCHITECTURE.md section 1); callers pass their ``first`` flags (the world model's
replay ``first``, PPO's ``Transition.reset``) unchanged. Both modes give the same outputs to float32
tolerance. Every call is checked (:class:`SequenceLayer`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def _name(layer: nn.Module, method: str) -> str:
    return f"{type(layer).__name__}.{method}"


def _check_resets(where: str, resets: Any, shape: tuple[int, ...], expected: str) -> None:
    if getattr(resets, "shape", None) != shape:
        raise ValueError(f"{where}: resets must be {expected} = {list(shape)}, got shape "
                         f"{list(getattr(resets, 'shape', ()))}")
    if resets.dtype != jnp.bool_:
        raise TypeError(f"{where}: resets must be {expected} bool (True: the step starts an episode), got dtype "
                        f"{resets.dtype}")


def _check_input(where: str, x: Any, rank: int, expected: str) -> None:
    if getattr(x, "ndim", None) != rank:
        raise ValueError(f"{where}: x must be {expected}, got shape {list(getattr(x, 'shape', ()))}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{where}: x must be {expected} floating point, got dtype {x.dtype}")


def _check_carry(where: str, carry: Any, batch: int, expected: str) -> None:
    for leaf in jax.tree.leaves(carry):
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != batch:
            raise ValueError(f"{where}: the carry is for batch {list(jnp.shape(leaf))[:1]}, x is {expected} with "
                             f"B = {batch} (initialize_carry(B) makes a fresh one)")


def _checked_scan(scan: Callable) -> Callable:
    @functools.wraps(scan)
    def checked(self, carry, x, resets):
        where = _name(self, "scan")
        _check_input(where, x, 3, "[T, B, H]")
        _check_resets(where, resets, x.shape[:2], "[T, B]")
        _check_carry(where, carry, x.shape[1], "[T, B, H]")
        return scan(self, carry, x, resets)

    return checked


def _checked_step(step: Callable) -> Callable:
    @functools.wraps(step)
    def checked(self, carry, x_t, reset_t):
        where = _name(self, "step")
        _check_input(where, x_t, 2, "[B, H]")
        _check_resets(where, reset_t, x_t.shape[:1], "[B]")
        _check_carry(where, carry, x_t.shape[0], "[B, H]")
        return step(self, carry, x_t, reset_t)

    return checked


class SequenceLayer(nn.Module):
    """Base class: subclasses define ``initialize_carry``, ``scan`` and ``step``.

    Every subclass's ``scan`` and ``step`` are wrapped here, once, to check their arguments: ranks,
    shapes and dtypes, and that the carry's batch matches ``x``'s. The checks read static shapes, so they
    run while JAX traces and cost nothing in compiled code; a mismatch raises ``ValueError`` (shape) or
    ``TypeError`` (dtype) naming the layer, the expected shape and the one given.
    """

    def __init_subclass__(cls, **kwargs):
        # Before Flax's own __init_subclass__, which wraps the methods it finds for scoping.
        if "scan" in cls.__dict__:
            cls.scan = _checked_scan(cls.__dict__["scan"])
        if "step" in cls.__dict__:
            cls.step = _checked_step(cls.__dict__["step"])
        super().__init_subclass__(**kwargs)

    def initialize_carry(self, batch_size: int):
        raise NotImplementedError

    def scan(self, carry, x: jax.Array, resets: jax.Array):
        raise NotImplementedError

    def step(self, carry, x_t: jax.Array, reset_t: jax.Array):
        raise NotImplementedError

    def __call__(self, x: jax.Array, resets: jax.Array, carry=None) -> jax.Array:
        if carry is None:
            if getattr(x, "ndim", None) != 3:
                raise ValueError(f"{_name(self, '__call__')}: x must be [T, B, H], got shape "
                                 f"{list(getattr(x, 'shape', ()))}")
            carry = self.initialize_carry(x.shape[1])
        return self.scan(carry, x, resets)[1]


def step_mode_outputs(model: nn.Module, params, x: jax.Array, resets: jax.Array, carry=None):
    """Run a module's ``step`` over ``x [T, B, H]`` from outside (tests, benchmarks): ``(carry, y)``."""
    if carry is None:
        carry = model.initialize_carry(x.shape[1])

    def body(c, inputs):
        x_t, r_t = inputs
        return model.apply(params, c, x_t, r_t, method="step")

    return jax.lax.scan(body, carry, (x, resets))

