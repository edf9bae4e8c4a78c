"""POPGym MineSweeper in pure JAX.

Rules (POPGym, Morad et al. 2023):

- ``num_mines`` mines hide under a ``rows`` x ``cols`` board (uniformly random distinct tiles).
  The board is never shown.
- Each step the agent clicks one tile: the action is the flat index ``row * cols + col``
  (POPGym's MultiDiscrete ``(row, col)`` flattened).
- Observation: one-hot of the number of mines in the 3x3 block around the clicked tile (the tile
  itself included), ``min(num_mines + 1, 10)`` categories; the reset observation is count 0, as
  in POPGym. POPGym marks this game ``obs_requires_prev_action``: the agent is expected to add
  the previous action (the clicked coordinates) to the observation itself.
- Reward, with ``L = rows * cols - num_mines`` (the episode length): ``+1 / L`` for revealing a new
  safe tile, ``-0.5 / (L - 2)`` for clicking a tile already revealed, ``-0.5 - 1 / L`` for
  clicking a mine. Revealing every safe tile returns 1; the return never drops below -1.
- The episode terminates on a mine or once every safe tile is revealed, and is truncated after
  ``L`` clicks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity


@struct.dataclass
class MineSweeperState(environment.EnvState):
    mines: jax.Array  # (R, C) bool
    viewed: jax.Array  # (R, C) bool: revealed safe tiles
    neighbors: jax.Array  # (R, C) int32: mines in the 3x3 block around each tile
    time: int


@struct.dataclass
class MineSweeperParams(environment.EnvParams):
    max_steps_in_episode: int = 14


class MineSweeper(SettingsIdentity, environment.Environment[MineSweeperState, MineSweeperParams]):
    """MineSweeper with the board hidden: only the clicked tile's mine count is observed."""

    def __init__(self, rows: int = 4, cols: int = 4, num_mines: int = 2):
        super().__init__()
        self.rows, self.cols, self.num_mines = int(rows), int(cols), int(num_mines)
        self.num_tiles = self.rows * self.cols
        assert 0 < self.num_mines < self.num_tiles - 2
        self.episode_length = self.num_tiles - self.num_mines
        self.success_reward = 1.0 / self.episode_length
        self.fail_reward = -0.5 - self.success_reward
        self.bad_action_reward = -0.5 / (self.episode_length - 2)
        self.num_obs = min(self.num_mines + 1, 10)

    def _config(self) -> tuple:
        return (self.rows, self.cols, self.num_mines)

    @property
    def default_params(self) -> MineSweeperParams:
        return MineSweeperParams(max_steps_in_episode=self.episode_length)

    @property
    def num_actions(self) -> int:
        return self.num_tiles

    def action_space(self, params: MineSweeperParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_tiles)

    def observation_space(self, params: MineSweeperParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_obs,), jnp.float32)

    def reset_env(
        self, key: jax.Array, params: MineSweeperParams
    ) -> tuple[jax.Array, MineSweeperState]:
        order = jax.random.permutation(key, self.num_tiles)
        rank = jnp.zeros((self.num_tiles,), jnp.int32).at[order].set(
            jnp.arange(self.num_tiles, dtype=jnp.int32)
        )
        mines = (rank < self.num_mines).reshape(self.rows, self.cols)
        padded = jnp.pad(mines.astype(jnp.int32), 1)
        neighbors = sum(
            padded[1 + dr : 1 + dr + self.rows, 1 + dc : 1 + dc + self.cols]
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
        )
        state = MineSweeperState(
            mines=mines, viewed=jnp.zeros_like(mines), neighbors=neighbors, time=0
        )
        return self._obs(jnp.int32(0)), state

    def step_env(
        self,
        key: jax.Array,
        state: MineSweeperState,
        action: int | jax.Array,
        params: MineSweeperParams,
    ) -> tuple[jax.Array, MineSweeperState, jax.Array, jax.Array, dict]:
        action = jnp.asarray(action, jnp.int32)
        row, col = action // self.cols, action % self.cols
        is_mine = state.mines[row, col]
        seen = state.viewed[row, col]
        reward = jnp.where(
            is_mine,
            self.fail_reward,
            jnp.where(seen, self.bad_action_reward, self.success_reward),
        ).astype(jnp.float32)
        viewed = state.viewed.at[row, col].set(seen | ~is_mine)
        terminated = is_mine | jnp.all(viewed | state.mines)
        new_state = state.replace(viewed=viewed, time=state.time + 1)
        return self._obs(state.neighbors[row, col]), new_state, reward, terminated, {}

    def _obs(self, count: jax.Array) -> jax.Array:
        return jax.nn.one_hot(jnp.minimum(count, self.num_obs - 1), self.num_obs, dtype=jnp.float32)


class MineSweeperEasy(MineSweeper):
    def __init__(self):
        super().__init__(rows=4, cols=4, num_mines=2)


class MineSweeperMedium(MineSweeper):
    def __init__(self):
        super().__init__(rows=6, cols=6, num_mines=6)


class MineSweeperHard(MineSweeper):
    def __init__(self):
        super().__init__(rows=8, cols=8, num_mines=10)
