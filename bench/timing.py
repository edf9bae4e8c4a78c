"""Timing compiled functions on whatever JAX runs on: the median of several calls after one warm-up call, each
call waited for (``block_until_ready``)."""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import numpy as np


def timed(fn: Callable, *args, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn(*args)`` after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def timed_steps(step: Callable, state: Any, repeats: int) -> tuple[float, Any]:
    """``(median seconds, last state)`` of ``repeats`` calls of ``step(state) -> (state, out)``, each fed the last
    one's state (the only way to call a step that donates its state twice), after one warm-up call."""
    state, out = step(state)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, out = step(state)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), state
