"""Distracting Memory (after S4WM, Deng et al. 2023): a coloured cue, a long hallway of distractors, and a
choice at the end whose reward depends on the cue.

Episode of ``width + 2`` steps:

* frame 0: the cue, a large square of colour ``c`` (one of ``num_colors``);
* frames ``1 .. width``: the hallway: ``num_distractors`` 2x2 squares of random palette colours (the cue
  colours among them) redrawn every step, the agent as a white mark whose row the actions move (even
  actions up, odd down) and whose column advances with time, a progress bar along the bottom;
* frame ``width + 1``: ``num_colors`` doors, door ``i`` in colour ``i``; the action picks a door, pays
  1 when its colour is the cue's and 0 otherwise, and ends the episode.

A world model that forgets the cue can still learn that a pick pays with probability ``1 / num_colors``,
so its reward-prediction accuracy at the choice is ``1 - 1 / num_colors`` under a uniform random policy
(50% with two colours), while one that remembers is right every time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from ssmrl.envs.memory.render import (
    PALETTE,
    WHITE,
    MemoryEnv,
    canvas,
    check_sizes,
    distractors,
    progress_bar,
    rectangle,
)


@struct.dataclass
class DistractingMemoryState:
    time: jax.Array      # int32: the frame index, 0 = cue
    cue: jax.Array       # int32 in [0, num_colors)
    agent_row: jax.Array  # int32
    frame_key: jax.Array  # the distractors of the current frame


class DistractingMemory(MemoryEnv):
    def __init__(self, width: int = 32, num_colors: int = 2, num_distractors: int = 3, size: int = 16):
        check_sizes("DistractingMemory", width=width, num_colors=num_colors, size=size)
        check_sizes("DistractingMemory", minimum=0, num_distractors=num_distractors)
        if not 2 <= num_colors <= PALETTE.shape[0] or size < 2 * num_colors + 2:
            raise ValueError(f"DistractingMemory: num_colors must be in [2, {PALETTE.shape[0]}] with "
                             f"size >= 2 * num_colors + 2, got num_colors={num_colors}, size={size}")
        super().__init__()
        self.width, self.num_colors, self.num_distractors, self.size = width, num_colors, num_distractors, size
        self.episode_length = width + 2

    def _config(self) -> tuple:
        return (self.width, self.num_colors, self.num_distractors, self.size)

    def render(self, state: DistractingMemoryState) -> jax.Array:
        """The observation ``[size, size, 3]`` uint8 of ``state``."""
        size, t = self.size, state.time
        cue = rectangle(canvas(size), size // 4, size // 4, size // 2, size // 2, PALETTE[state.cue])
        hall = distractors(canvas(size), state.frame_key, self.num_distractors, size - 2)
        column = (t - 1) * (size - 2) // max(self.width - 1, 1)
        hall = rectangle(hall, state.agent_row, column, 1, 2, WHITE)
        doors = canvas(size)
        for i in range(self.num_colors):
            doors = rectangle(doors, 1, 1 + i * (size - 2) // self.num_colors, size - 3, 2, PALETTE[i])
        image = jnp.where(t == 0, cue, jnp.where(t <= self.width, hall, doors))
        return progress_bar(image, t / (self.episode_length - 1))

    def reset_env(self, key: jax.Array, params):
        k_cue, k_row, k_frame = jax.random.split(key, 3)
        state = DistractingMemoryState(
            time=jnp.int32(0), cue=jax.random.randint(k_cue, (), 0, self.num_colors),
            agent_row=jax.random.randint(k_row, (), 0, self.size - 2), frame_key=k_frame)
        return self.render(state), state

    def step_env(self, key: jax.Array, state: DistractingMemoryState, action, params):
        choosing = state.time == self.width + 1
        reward = jnp.where(choosing & (action == state.cue), 1.0, 0.0).astype(jnp.float32)
        move = jnp.where(action % 2 == 0, -1, 1)
        state = DistractingMemoryState(
            time=state.time + 1, cue=state.cue,
            agent_row=jnp.clip(state.agent_row + move, 0, self.size - 3), frame_key=key)
        return self.render(state), state, reward, choosing, {}

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(self.num_colors)
