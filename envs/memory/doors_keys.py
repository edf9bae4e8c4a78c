"""Multi Doors Keys (after S4WM, Deng et al. 2023): keys of several colours offered first, a hallway of
distractors, then doors that open only for the keys taken long before.

Episode of ``num_keys + width + 2 num_keys`` steps:

* frames ``0 .. K-1``: key ``i`` (colour ``i``) on offer; an odd action takes it, an even one leaves it.
  A taken key is never drawn again: what the agent holds lives only in memory;
* ``width`` hallway frames with random distractors, as in Distracting Memory;
* for each door ``j``: a frame with door ``j`` closed (an odd action tries it), then the outcome frame:
  door ``j`` drawn open (its frame with a black inside) when it was tried and key ``j`` is held,
  closed otherwise. Opening a door pays 1.

The outcome frames are the memory test: predicting one right needs the key choice made
``width + K`` steps earlier. The metric (``frame_mask``) is the generation error on those frames.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from ssmrl.envs.memory.render import (
    PALETTE,
    MemoryEnv,
    canvas,
    check_sizes,
    distractors,
    progress_bar,
    rectangle,
)


@struct.dataclass
class DoorsKeysState:
    time: jax.Array       # int32 frame index
    held: jax.Array       # bool [K]: keys taken
    opened: jax.Array     # bool: the current frame is an outcome frame showing its door open
    frame_key: jax.Array


class MultiDoorsKeys(MemoryEnv):
    def __init__(self, num_keys: int = 3, width: int = 16, num_distractors: int = 3, size: int = 16):
        check_sizes("MultiDoorsKeys", num_keys=num_keys, width=width, size=size)
        check_sizes("MultiDoorsKeys", minimum=0, num_distractors=num_distractors)
        if num_keys > PALETTE.shape[0] or size < 8:
            raise ValueError(f"MultiDoorsKeys: num_keys must be <= {PALETTE.shape[0]} and size >= 8, got "
                             f"num_keys={num_keys}, size={size}")
        super().__init__()
        self.num_keys, self.width, self.num_distractors, self.size = num_keys, width, num_distractors, size
        self.doors_start = num_keys + width
        self.episode_length = num_keys + width + 2 * num_keys

    def _config(self) -> tuple:
        return (self.num_keys, self.width, self.num_distractors, self.size)

    def frame_mask(self) -> jax.Array:
        """bool ``[episode_length]``: the door-outcome frames, where the metric is taken."""
        t = jnp.arange(self.episode_length)
        return (t >= self.doors_start) & ((t - self.doors_start) % 2 == 1)

    def render(self, state: DoorsKeysState) -> jax.Array:
        size, t, K = self.size, state.time, self.num_keys
        key_index = jnp.clip(t, 0, K - 1)
        offer = rectangle(canvas(size), size // 2 - 2, size // 2 - 3, 3, 3, PALETTE[key_index])
        offer = rectangle(offer, size // 2 - 1, size // 2, 1, 3, PALETTE[key_index])  # the key's shaft
        hall = distractors(canvas(size), state.frame_key, self.num_distractors, size - 2)
        door_index = jnp.clip((t - self.doors_start) // 2, 0, K - 1)
        door = rectangle(canvas(size), 2, size // 2 - 3, size - 4, 6, PALETTE[door_index])
        door = rectangle(door, 3, size // 2 - 2, size - 6, 4, jnp.zeros(3, jnp.uint8), visible=state.opened)
        image = jnp.where(t < K, offer, jnp.where(t < self.doors_start, hall, door))
        return progress_bar(image, t / (self.episode_length - 1))

    def reset_env(self, key: jax.Array, params):
        state = DoorsKeysState(time=jnp.int32(0), held=jnp.zeros((self.num_keys,), bool), opened=jnp.bool_(False),
                               frame_key=key)
        return self.render(state), state

    def step_env(self, key: jax.Array, state: DoorsKeysState, action, params):
        t, K = state.time, self.num_keys
        take = (t < K) & (action % 2 == 1)
        held = state.held | (take & (jnp.arange(K) == t))
        at_door = (t >= self.doors_start) & ((t - self.doors_start) % 2 == 0)
        door_index = jnp.clip((t - self.doors_start) // 2, 0, K - 1)
        opens = at_door & (action % 2 == 1) & held[door_index]
        state = DoorsKeysState(time=t + 1, held=held, opened=opens, frame_key=key)
        done = state.time >= self.episode_length
        return self.render(state), state, opens.astype(jnp.float32), done, {}

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)
