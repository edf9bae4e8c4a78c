"""Four Rooms (after S4WM's long-imagination test): a grid of four rooms whose floors get random colours
each episode, seen through a small egocentric window.

The grid is ``grid x grid`` cells (odd ``grid``): a wall around it and a cross of walls through the
middle with one doorway in each arm. Each room's floor colour is drawn from the palette at reset. The
agent sees the ``view x view`` cells around it, each drawn as ``cell x cell`` pixels (walls grey, the
outside black, itself white in the centre); actions move it up, down, left, right (walls block).
Episodes last ``length`` steps, no reward.

Long imagination after a context of random exploration is the test: walking back into a room seen
during the context, a world model must recall that room's colour.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from ssmrl.envs.memory.render import GREY, PALETTE, WHITE, MemoryEnv, check_sizes

MOVES = jnp.array([[-1, 0], [1, 0], [0, -1], [0, 1]], jnp.int32)


@struct.dataclass
class FourRoomsState:
    time: jax.Array
    position: jax.Array  # int32 [2]: (row, col)
    colours: jax.Array   # int32 [4]: palette index of each room's floor


class FourRooms(MemoryEnv):
    def __init__(self, grid: int = 9, view: int = 5, cell: int = 3, length: int = 128):
        check_sizes("FourRooms", grid=grid, view=view, cell=cell, length=length)
        if grid < 5 or grid % 2 == 0 or view % 2 == 0:
            raise ValueError(f"FourRooms: grid must be odd and >= 5 and view odd, got grid={grid}, view={view}")
        super().__init__()
        self.grid, self.view, self.cell, self.length = grid, view, cell, length
        self.size = view * cell
        self.episode_length = length
        middle = grid // 2
        walls = jnp.zeros((grid, grid), bool).at[0].set(True).at[-1].set(True).at[:, 0].set(True)
        walls = walls.at[:, -1].set(True).at[middle].set(True).at[:, middle].set(True)
        quarter = (middle + 1) // 2
        for r, c in ((middle, quarter), (middle, middle + quarter), (quarter, middle), (middle + quarter, middle)):
            walls = walls.at[r, c].set(False)
        self.walls = walls

    def _config(self) -> tuple:
        return (self.grid, self.view, self.cell, self.length)

    def room(self, position: jax.Array) -> jax.Array:
        """Index 0..3 of the room holding ``position`` (doorways count as the room below / to the right)."""
        middle = self.grid // 2
        return 2 * (position[0] >= middle) + (position[1] >= middle)

    def render(self, state: FourRoomsState) -> jax.Array:
        half = self.view // 2
        offsets = jnp.arange(-half, half + 1)
        rows, cols = state.position[0] + offsets[:, None], state.position[1] + offsets[None, :]
        rows_b, cols_b = jnp.broadcast_arrays(rows, cols)
        inside = (rows_b >= 0) & (rows_b < self.grid) & (cols_b >= 0) & (cols_b < self.grid)
        r, c = jnp.clip(rows_b, 0, self.grid - 1), jnp.clip(cols_b, 0, self.grid - 1)
        rooms = 2 * (r >= self.grid // 2) + (c >= self.grid // 2)
        floor = PALETTE[state.colours[rooms]]
        cells = jnp.where(self.walls[r, c][..., None], GREY, floor)
        cells = jnp.where(inside[..., None], cells, jnp.zeros(3, jnp.uint8))
        cells = cells.at[half, half].set(WHITE)
        return jnp.repeat(jnp.repeat(cells, self.cell, 0), self.cell, 1)

    def reset_env(self, key: jax.Array, params):
        k_pos, k_col = jax.random.split(key)
        free = jnp.flatnonzero(~self.walls.reshape(-1), size=self.grid * self.grid)
        count = jnp.sum(~self.walls)
        index = free[jax.random.randint(k_pos, (), 0, count)]
        position = jnp.stack([index // self.grid, index % self.grid]).astype(jnp.int32)
        colours = jax.random.randint(k_col, (4,), 0, PALETTE.shape[0])
        state = FourRoomsState(time=jnp.int32(0), position=position, colours=colours)
        return self.render(state), state

    def step_env(self, key: jax.Array, state: FourRoomsState, action, params):
        target = state.position + MOVES[action]
        blocked = self.walls[target[0], target[1]]
        position = jnp.where(blocked, state.position, target)
        state = FourRoomsState(time=state.time + 1, position=position, colours=state.colours)
        return self.render(state), state, jnp.float32(0.0), state.time >= self.length, {}

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(4)
