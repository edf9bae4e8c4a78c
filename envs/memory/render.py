"""Drawing for the memory environments: uint8 RGB canvases, filled rectangles at traced positions.

Positions and colours may be traced values (they come from the env state), so rectangles are drawn
by comparing index grids rather than by slicing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity

# Distinct, saturated colours; index 0..7. Cues, keys and doors use the first ones, distractors any.
PALETTE = jnp.array([
    [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25],
    [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
], jnp.uint8)
GREY = jnp.array([128, 128, 128], jnp.uint8)
WHITE = jnp.array([255, 255, 255], jnp.uint8)


def canvas(size: int) -> jax.Array:
    """A black ``[size, size, 3]`` uint8 image."""
    return jnp.zeros((size, size, 3), jnp.uint8)


def rectangle(image: jax.Array, top, left, height, width, colour: jax.Array, visible=True) -> jax.Array:
    """``image`` with the rectangle ``[top, top + height) x [left, left + width)`` filled by ``colour [3]``
    where ``visible`` (a traced bool is fine)."""
    rows = jnp.arange(image.shape[0])[:, None]
    cols = jnp.arange(image.shape[1])[None, :]
    inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width) & visible
    return jnp.where(inside[..., None], colour, image)


def progress_bar(image: jax.Array, fraction) -> jax.Array:
    """A grey bar along the bottom row, ``fraction`` of the width long: where in the episode we are."""
    size = image.shape[1]
    return rectangle(image, size - 1, 0, 1, jnp.round(fraction * size).astype(jnp.int32), GREY)


def distractors(image: jax.Array, key: jax.Array, count: int, rows: int) -> jax.Array:
    """``count`` random 2x2 squares of random palette colours in the top ``rows`` rows."""
    k_y, k_x, k_c = jax.random.split(key, 3)
    ys = jax.random.randint(k_y, (count,), 0, rows - 1)
    xs = jax.random.randint(k_x, (count,), 0, image.shape[1] - 1)
    colours = PALETTE[jax.random.randint(k_c, (count,), 0, PALETTE.shape[0])]
    for i in range(count):
        image = rectangle(image, ys[i], xs[i], 2, 2, colours[i])
    return image


@struct.dataclass
class MemoryParams:
    """Non-static settings: the episode cap (never reached: every episode ends by termination first)."""

    max_steps_in_episode: int = 1


class MemoryEnv(SettingsIdentity, environment.Environment):
    """Base class: images ``[size, size, 3]`` uint8, episodes of ``episode_length`` steps that end by
    termination (``max_steps`` is one beyond, so truncation never fires)."""

    size: int
    episode_length: int

    @property
    def default_params(self) -> MemoryParams:
        return MemoryParams(max_steps_in_episode=self.episode_length + 1)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0, 255, (self.size, self.size, 3), jnp.uint8)


def check_sizes(name: str, minimum: int = 1, **values: int) -> None:
    """Constructor arguments must be ints ``>= minimum``: fail naming the bad one."""
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name}: {key} must be an int >= {minimum}, got {value!r}")
