"""POPGym Battleship in pure JAX.

Rules (POPGym, Morad et al. 2023):

- A square board of ``board_size`` x ``board_size`` tiles holds ships of lengths 2, 3, 3 and 4,
  placed one after another at uniformly random valid spots (horizontal or vertical, inside the
  board, not overlapping). The board is never shown.
- Each step the agent fires at one tile: the action is the flat index ``row * board_size + col``
  (POPGym's MultiDiscrete ``(row, col)`` flattened).
- Observation: one-hot ``[miss, hit]`` of the last shot; a shot is a hit only when it strikes a
  ship tile that was not fired at before. The reset observation is "miss", as in POPGym. POPGym
  marks this game ``obs_requires_prev_action``: the agent is expected to add the previous action
  (which carries the fired coordinates) to the observation itself.
- Reward: ``+1 / needed_hits`` for a hit and ``-1 / (board_size**2 - needed_hits)`` otherwise,
  so sinking every ship without a miss returns 1 and firing at every tile once returns 0.
- The episode terminates when every ship tile has been hit and is truncated after
  ``board_size**2`` shots.

Deviation: POPGym's return falls below -1 when more than ``board_size**2 - needed_hits`` shots
miss (possible only by firing at the same tiles again). Here the penalty of such a shot is
clipped so that the episode's return never drops below -1; every trajectory whose POPGym return
is at least -1 gets exactly POPGym's rewards.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity


@struct.dataclass
class BattleshipState(environment.EnvState):
    board: jax.Array  # (B, B) bool: ship tiles
    guesses: jax.Array  # (B, B) bool: tiles fired at
    hits: jax.Array  # int32: distinct ship tiles hit
    ret: jax.Array  # float32: return so far (for the -1 floor)
    time: int


@struct.dataclass
class BattleshipParams(environment.EnvParams):
    max_steps_in_episode: int = 64


def _pick(mask: jax.Array, u: jax.Array) -> jax.Array:
    """Index of a uniformly random True entry of the 1-D ``mask``, given ``u`` ~ U[0, 1)."""
    count = jnp.sum(mask, dtype=jnp.int32)
    k = jnp.minimum((u * count).astype(jnp.int32), count - 1)
    return jnp.argmax(jnp.cumsum(mask, dtype=jnp.int32) > k)


class Battleship(SettingsIdentity, environment.Environment[BattleshipState, BattleshipParams]):
    """Battleship with the board hidden: only hit / miss of the last shot is observed."""

    def __init__(self, board_size: int = 10, ship_sizes: Sequence[int] = (2, 3, 3, 4)):
        super().__init__()
        self.board_size = int(board_size)
        self.ship_sizes = tuple(int(s) for s in ship_sizes)
        self.num_tiles = self.board_size**2
        self.needed_hits = sum(self.ship_sizes)
        self.hit_reward = 1.0 / self.needed_hits
        self.miss_reward = -1.0 / (self.num_tiles - self.needed_hits)

    def _config(self) -> tuple:
        return (self.board_size, self.ship_sizes)

    @property
    def default_params(self) -> BattleshipParams:
        return BattleshipParams(max_steps_in_episode=self.num_tiles)

    @property
    def num_actions(self) -> int:
        return self.num_tiles

    def action_space(self, params: BattleshipParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_tiles)

    def observation_space(self, params: BattleshipParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)

    def _place_ships(self, key: jax.Array) -> jax.Array:
        """Place the ships one after another, each uniformly over its free, in-board segments.

        POPGym draws a start tile, an axis and a direction uniformly and retries until the ship
        fits; every segment of length >= 2 arises from exactly two such draws (one from each
        end), so that is the uniform distribution over valid segments sampled here directly.
        """
        b = self.board_size
        idx = jnp.arange(b, dtype=jnp.int32)
        rows, cols = idx[:, None], idx[None, :]
        occupied = jnp.zeros((b, b), bool)
        uniforms = jax.random.uniform(key, (len(self.ship_sizes),))
        for i, length in enumerate(self.ship_sizes):
            span = b - length + 1  # start positions along the ship's axis
            occ = occupied.astype(jnp.int32)
            cum_h = jnp.pad(jnp.cumsum(occ, axis=1), ((0, 0), (1, 0)))  # (b, b+1)
            cum_v = jnp.pad(jnp.cumsum(occ, axis=0), ((1, 0), (0, 0)))  # (b+1, b)
            free_h = cum_h[:, length:] == cum_h[:, :span]  # (b, span): row r, cols c..c+L-1
            free_v = cum_v[length:, :] == cum_v[:span, :]  # (span, b): rows r..r+L-1, col c
            choice = _pick(jnp.concatenate([free_h.reshape(-1), free_v.reshape(-1)]), uniforms[i])
            vertical = choice >= b * span
            j = jnp.where(vertical, choice - b * span, choice)
            h_row, h_col = j // span, j % span
            v_row, v_col = j // b, j % b
            row0 = jnp.where(vertical, v_row, h_row)
            col0 = jnp.where(vertical, v_col, h_col)
            row_len = jnp.where(vertical, length, 1)
            col_len = jnp.where(vertical, 1, length)
            ship = (
                (rows >= row0) & (rows < row0 + row_len) & (cols >= col0) & (cols < col0 + col_len)
            )
            occupied = occupied | ship
        return occupied

    def reset_env(
        self, key: jax.Array, params: BattleshipParams
    ) -> tuple[jax.Array, BattleshipState]:
        board = self._place_ships(key)
        state = BattleshipState(
            board=board,
            guesses=jnp.zeros_like(board),
            hits=jnp.int32(0),
            ret=jnp.float32(0.0),
            time=0,
        )
        return self._obs(jnp.bool_(False)), state

    def step_env(
        self,
        key: jax.Array,
        state: BattleshipState,
        action: int | jax.Array,
        params: BattleshipParams,
    ) -> tuple[jax.Array, BattleshipState, jax.Array, jax.Array, dict]:
        action = jnp.asarray(action, jnp.int32)
        row, col = action // self.board_size, action % self.board_size
        hit = state.board[row, col] & ~state.guesses[row, col]
        raw = jnp.where(hit, self.hit_reward, self.miss_reward).astype(jnp.float32)
        reward = jnp.maximum(raw, -1.0 - state.ret)
        hits = state.hits + hit.astype(jnp.int32)
        new_state = BattleshipState(
            board=state.board,
            guesses=state.guesses.at[row, col].set(True),
            hits=hits,
            ret=state.ret + reward,
            time=state.time + 1,
        )
        terminated = hits >= self.needed_hits
        return self._obs(hit), new_state, reward, terminated, {}

    @staticmethod
    def _obs(hit: jax.Array) -> jax.Array:
        return jax.nn.one_hot(hit.astype(jnp.int32), 2, dtype=jnp.float32)


class BattleshipEasy(Battleship):
    def __init__(self):
        super().__init__(board_size=8)


class BattleshipMedium(Battleship):
    def __init__(self):
        super().__init__(board_size=10)


class BattleshipHard(Battleship):
    def __init__(self):
        super().__init__(board_size=12)
