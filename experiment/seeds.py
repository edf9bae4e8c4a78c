"""Run a per-seed function over a leading ``[seeds]`` axis: vmapped, or one seed after another.

Each seed has its own weights. vmapping seeds turns every weight product into a batched product over seeds and
interleaves the seeds step by step, so a rollout reads all seeds' weights at every step. On the CPU that costs more
than it saves: the weights stop fitting in cache and 8 vmapped seeds of PPO-S5 at paper size took 12.7x the time of
one, against 7.8x for the same seeds one after another (``lax.map``; docs/RESULTS.md, issue #14). Accelerators keep
the vmap, where batching is what makes seeds cheap. Both give every seed the same result as a one-seed run, up to
floating-point reassociation in batched products (``sequential`` gives exactly the one-seed computation).
"""

from __future__ import annotations

from typing import Callable, Literal

import jax

SeedMethod = Literal["auto", "vmap", "sequential"]
SEED_METHODS = ("auto", "vmap", "sequential")


def resolve_seed_method(method: SeedMethod) -> str:
    """``auto`` runs seeds one after another on the CPU and vmapped elsewhere (bench/ppo_popgym.py)."""
    if method not in SEED_METHODS:
        raise ValueError(f"unknown seed method {method!r}; valid: {list(SEED_METHODS)}")
    if method == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "vmap"
    return method


def over_seeds(fn: Callable, method: SeedMethod = "auto") -> Callable:
    """``fn(*args)`` for one seed -> the same function over a leading ``[seeds]`` axis of every argument (pytrees
    included) and of every output."""
    if resolve_seed_method(method) == "vmap":
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda one: fn(*one), args)
