"""Prompts: short K_p-step segments prepended to the DT's input.

Meta-DT's prompt is *complementary* to the task vector: the window of an episode where the context
world model predicts worst (:func:`best_window` over its per-step errors), i.e. what z does not already
explain. Prompt-DT's prompt is any segment of an expert episode of the task.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Prompt(NamedTuple):
    rtg: jax.Array  # [B, Kp] scaled return-to-go of the source episode
    states: jax.Array  # [B, Kp, obs] normalised
    actions: jax.Array  # [B, Kp, act]
    timesteps: jax.Array  # [B, Kp] int


def window_sums(errors: jax.Array, length: int) -> jax.Array:
    """``errors [..., T] -> [..., T - length + 1]``: the sum over each window of ``length`` steps."""
    c = jnp.cumsum(jnp.pad(errors, [(0, 0)] * (errors.ndim - 1) + [(1, 0)]), axis=-1)
    return c[..., length:] - c[..., :-length]


def best_window(errors: jax.Array, length: int) -> jax.Array:
    """Start of the window of ``length`` steps with the largest summed error: ``[..., T] -> [...]`` int."""
    return jnp.argmax(window_sums(errors, length), axis=-1).astype(jnp.int32)


def gather_prompt(rtg: jax.Array, states: jax.Array, actions: jax.Array, episode: jax.Array, start: jax.Array,
                  length: int) -> Prompt:
    """The ``length``-step segments at ``start [B]`` of episodes ``episode [B]`` of ``[N, T, ...]`` arrays."""
    steps = start[:, None] + jnp.arange(length)[None]  # [B, Kp]
    ep = episode[:, None]
    return Prompt(rtg[ep, steps], states[ep, steps], actions[ep, steps], steps.astype(jnp.int32))


def empty_prompt(batch_size: int, length: int, obs_dim: int, act_dim: int) -> Prompt:
    """Zeros of the prompt's shapes (the model replaces them by its learned empty prompt)."""
    return Prompt(jnp.zeros((batch_size, length)), jnp.zeros((batch_size, length, obs_dim)),
                  jnp.zeros((batch_size, length, act_dim)), jnp.zeros((batch_size, length), jnp.int32))
