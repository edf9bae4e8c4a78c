"""POPGym LabyrinthEscape and LabyrinthExplore in pure JAX (first JAX port of both).

Shared rules (POPGym's ``MazeEnv``, Morad et al. 2023):

- ``maze_dims = (height, width)`` (even) gives a maze of ``height/2`` x ``width/2`` cells drawn on
  a ``(height + 1) x (width + 1)`` tile grid: cells sit at odd (row, col), walls between them.
  Sizes: Easy 10x10 (5x5 cells, 11x11 tiles), Medium 14x14 (7x7 cells, 15x15 tiles),
  Hard 18x18 (9x9 cells, 19x19 tiles); 1024 steps per episode for every difficulty.
- Each reset draws a new perfect maze (every cell reachable, no loops) with randomised
  hunt-and-kill, POPGym's generator (mazelib ``HuntAndKill``, random hunt order): random walk
  into unvisited cells, and when stuck restart from a random visited cell that still has an
  unvisited neighbour. Written as a ``lax.fori_loop`` that carves exactly one new cell per
  iteration, so the maze is always complete.
- Entrances (mazelib ``generate_entrances``): a random side of the outer wall gets the start
  tile at a random cell-aligned position; the opposite side gets the end tile. The agent starts
  on the start tile.
- Actions: ``Discrete(4)``: 0 left, 1 right, 2 up, 3 down; moves into walls or off the grid
  leave the agent in place.
- Observation: the 3x3 tiles around the agent, each one-hot over (free, wall, start, goal),
  followed by a one-hot of the last action over (left, right, up, down, none); "none" at reset.
  Tiles outside the grid read as walls.

LabyrinthEscape: the end tile is the goal. Every step costs ``-1 / 1024``; stepping onto the
goal adds ``+1`` and terminates the episode. Returns lie in [-1, 1].

LabyrinthExplore: the end tile stays a wall. Stepping onto a tile not visited before gives
``+1 / n_free`` (``n_free`` = free tiles besides the start), any other step ``-1 / 1024``; the
episode terminates once every reachable tile is visited. Returns lie in [-1, 1].

The step cost is ``-1 / params.max_steps_in_episode`` (1024 by default), so returns stay in
[-1, 1] if the time limit is changed.

Deviations from POPGym: (1) POPGym's local view is shifted (not centred on the agent) when the
agent stands on the outer wall, i.e. on the start or goal tile; here the 3x3 view is always
centred. (2) POPGym truncates after 1023 steps while scaling the step cost by 1/1024; here an
episode has 1024 steps, so the return of an agent that never finishes is exactly -1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity

FREE, OBSTACLE, START, GOAL = 0, 1, 2, 3
NUM_TILE_TYPES = 4
NONE_ACTION = 4
# (d_row, d_col) of actions left, right, up, down
MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))


def _pick(mask: jax.Array, u: jax.Array) -> jax.Array:
    """Index of a uniformly random True entry of the 1-D ``mask``, given ``u`` ~ U[0, 1)."""
    count = jnp.sum(mask, dtype=jnp.int32)
    k = jnp.minimum((u * count).astype(jnp.int32), count - 1)
    return jnp.argmax(jnp.cumsum(mask, dtype=jnp.int32) > k)


def _bit(words: jax.Array, row: jax.Array, col: jax.Array) -> jax.Array:
    """Bit ``col`` of ``words[row]`` as bool."""
    return ((words[row] >> col.astype(jnp.uint32)) & 1).astype(bool)


def _row_bit(rows: jax.Array, row: jax.Array, col: jax.Array, on: jax.Array = True) -> jax.Array:
    """(h,) uint32 words that are zero except bit ``col`` of word ``row`` (when ``on``)."""
    one = jnp.left_shift(jnp.uint32(1), col.astype(jnp.uint32))
    return jnp.where((rows == row) & on, one, jnp.uint32(0))


def generate_maze(key: jax.Array, cell_rows: int, cell_cols: int) -> jax.Array:
    """A perfect maze by randomised hunt-and-kill: (2*cell_rows+1, 2*cell_cols+1) bool, True = free.

    Each ``fori_loop`` iteration picks a source cell (the current cell if it has an unvisited
    neighbour, else a uniformly random visited cell that has one), carves a passage to a random
    unvisited neighbour of it and moves there: ``cell_rows * cell_cols - 1`` iterations make a
    spanning tree of the cells.

    gymnax computes a reset at every step (for its auto-reset), so this loop runs at every step
    and is written to be cheap: one row of cells is one uint32 bit mask (visited cells, east and
    south passages), so the whole-maze "which cells can still grow" test costs a few word
    operations, and all random numbers (two per iteration) are drawn before the loop.
    """
    h, w = cell_rows, cell_cols
    assert w <= 31, "one uint32 word per row of cells"
    n = h * w
    row_mask = jnp.uint32((1 << w) - 1)
    rows = jnp.arange(h, dtype=jnp.int32)
    bit_pos = jnp.arange(w, dtype=jnp.uint32)
    moves = jnp.asarray(MOVES, jnp.int32)
    zero = jnp.zeros((1,), jnp.uint32)
    key_start, key_loop = jax.random.split(key)
    first = jax.random.randint(key_start, (), 0, n)
    uniforms = jax.random.uniform(key_loop, (max(n - 1, 1), 2))

    def body(i, carry):
        visited, east, south, cur_row, cur_col = carry
        unvisited = ~visited & row_mask
        # bit c of each word: the neighbour of cell (r, c) in that direction exists, unvisited
        open_dirs = (
            (unvisited << 1) & row_mask,  # left
            unvisited >> 1,  # right
            jnp.concatenate([zero, unvisited[:-1]]),  # up
            jnp.concatenate([unvisited[1:], zero]),  # down
        )
        grow = (open_dirs[0] | open_dirs[1] | open_dirs[2] | open_dirs[3]) & visited
        stay = _bit(grow, cur_row, cur_col)
        # uniformly random set bit of `grow`: pick its row by popcount, then the bit in the row
        counts = jax.lax.population_count(grow).astype(jnp.int32)
        cum = jnp.cumsum(counts)
        k = jnp.minimum((uniforms[i, 0] * cum[-1]).astype(jnp.int32), cum[-1] - 1)
        hunt_row = jnp.argmax(cum > k).astype(jnp.int32)
        k_in_row = k - (cum[hunt_row] - counts[hunt_row])
        row_bits = ((grow[hunt_row] >> bit_pos) & 1).astype(jnp.int32)
        hunt_col = jnp.argmax(jnp.cumsum(row_bits) > k_in_row).astype(jnp.int32)
        src_row = jnp.where(stay, cur_row, hunt_row)
        src_col = jnp.where(stay, cur_col, hunt_col)
        src_open = jnp.stack([_bit(d, src_row, src_col) for d in open_dirs])
        direction = _pick(src_open, uniforms[i, 1])
        d_row, d_col = moves[direction, 0], moves[direction, 1]
        new_row, new_col = src_row + d_row, src_col + d_col
        visited = visited | _row_bit(rows, new_row, new_col)
        horizontal = d_row == 0
        east = east | _row_bit(rows, src_row, jnp.minimum(src_col, new_col), horizontal)
        south = south | _row_bit(rows, jnp.minimum(src_row, new_row), src_col, ~horizontal)
        return visited, east, south, new_row, new_col

    first_row, first_col = first // w, first % w
    empty = jnp.zeros((h,), jnp.uint32)
    init = (_row_bit(rows, first_row, first_col), empty, empty, first_row, first_col)
    _, east, south, _, _ = jax.lax.fori_loop(0, n - 1, body, init)

    def unpack(words: jax.Array) -> jax.Array:
        return ((words[:, None] >> bit_pos[None, :]) & 1).astype(bool)  # (h, w)

    free = jnp.zeros((2 * h + 1, 2 * w + 1), bool)
    free = free.at[1::2, 1::2].set(True)
    free = free.at[1::2, 2::2].set(unpack(east))  # passage east of cell (r, c); last col unused
    free = free.at[2::2, 1::2].set(unpack(south))  # passage south of cell (r, c); last row unused
    return free


def _entrances(key: jax.Array, cell_rows: int, cell_cols: int) -> tuple[jax.Array, jax.Array]:
    """Start and end tiles on opposite outer walls, at cell-aligned (odd) positions: (2,) each."""
    big_h, big_w = 2 * cell_rows + 1, 2 * cell_cols + 1
    k_side, k_a, k_b = jax.random.split(key, 3)
    side = jax.random.randint(k_side, (), 0, 4)
    a_row, b_row = 2 * jax.random.randint(k_a, (2,), 0, cell_rows) + 1
    a_col, b_col = 2 * jax.random.randint(k_b, (2,), 0, cell_cols) + 1
    starts = jnp.stack(
        [
            jnp.stack([0, a_col]),  # north
            jnp.stack([big_h - 1, a_col]),  # south
            jnp.stack([a_row, 0]),  # west
            jnp.stack([a_row, big_w - 1]),  # east
        ]
    )
    ends = jnp.stack(
        [
            jnp.stack([big_h - 1, b_col]),
            jnp.stack([0, b_col]),
            jnp.stack([b_row, big_w - 1]),
            jnp.stack([b_row, 0]),
        ]
    )
    return starts[side].astype(jnp.int32), ends[side].astype(jnp.int32)


@struct.dataclass
class LabyrinthState(environment.EnvState):
    grid: jax.Array  # (H, W) int8 tile types: FREE / OBSTACLE / START / GOAL
    explored: jax.Array  # (H, W) bool: tiles visited this episode
    pos: jax.Array  # (2,) int32 (row, col)
    time: int


@struct.dataclass
class LabyrinthParams(environment.EnvParams):
    max_steps_in_episode: int = 1024


class Labyrinth(SettingsIdentity, environment.Environment[LabyrinthState, LabyrinthParams]):
    """Shared maze machinery; subclasses set ``goal_on_exit`` and the reward."""

    goal_on_exit = False

    def __init__(self, maze_dims: tuple[int, int] = (10, 10), episode_length: int = 1024):
        super().__init__()
        assert maze_dims[0] % 2 == 0 and maze_dims[1] % 2 == 0, "maze dims must be even"
        self.cell_rows, self.cell_cols = maze_dims[0] // 2, maze_dims[1] // 2
        self.grid_shape = (2 * self.cell_rows + 1, 2 * self.cell_cols + 1)
        self.episode_length = int(episode_length)
        # perfect maze: every cell plus one passage per spanning-tree edge
        self.num_free = 2 * self.cell_rows * self.cell_cols - 1

    def _config(self) -> tuple:
        return (self.cell_rows, self.cell_cols, self.episode_length)

    @property
    def default_params(self) -> LabyrinthParams:
        return LabyrinthParams(max_steps_in_episode=self.episode_length)

    @property
    def num_actions(self) -> int:
        return 4

    def action_space(self, params: LabyrinthParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(4)

    def observation_space(self, params: LabyrinthParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (9 * NUM_TILE_TYPES + 5,), jnp.float32)

    def reset_env(
        self, key: jax.Array, params: LabyrinthParams
    ) -> tuple[jax.Array, LabyrinthState]:
        k_maze, k_ent = jax.random.split(key)
        free = generate_maze(k_maze, self.cell_rows, self.cell_cols)
        start, end = _entrances(k_ent, self.cell_rows, self.cell_cols)
        grid = jnp.where(free, FREE, OBSTACLE).astype(jnp.int8)
        grid = grid.at[start[0], start[1]].set(START)
        if self.goal_on_exit:
            grid = grid.at[end[0], end[1]].set(GOAL)
        explored = jnp.zeros(self.grid_shape, bool).at[start[0], start[1]].set(True)
        state = LabyrinthState(grid=grid, explored=explored, pos=start, time=0)
        return self._obs(grid, start, jnp.int32(NONE_ACTION)), state

    def _move(self, state: LabyrinthState, action: jax.Array) -> jax.Array:
        delta = jnp.asarray(MOVES, jnp.int32)[action]
        target = jnp.clip(
            state.pos + delta, 0, jnp.asarray(self.grid_shape, jnp.int32) - 1
        )
        blocked = state.grid[target[0], target[1]] == OBSTACLE
        return jnp.where(blocked, state.pos, target)

    def _obs(self, grid: jax.Array, pos: jax.Array, action: jax.Array) -> jax.Array:
        padded = jnp.pad(grid, 1, constant_values=OBSTACLE)
        view = jax.lax.dynamic_slice(padded, (pos[0], pos[1]), (3, 3))
        tiles = jax.nn.one_hot(view.reshape(9), NUM_TILE_TYPES, dtype=jnp.float32).reshape(-1)
        last = jax.nn.one_hot(action, 5, dtype=jnp.float32)
        return jnp.concatenate([tiles, last])

    def _reward(
        self, state: LabyrinthState, new_tile: jax.Array, params: LabyrinthParams
    ) -> tuple[jax.Array, jax.Array]:
        """(reward, terminated) of the step that led to ``state``."""
        raise NotImplementedError

    def step_env(
        self,
        key: jax.Array,
        state: LabyrinthState,
        action: int | jax.Array,
        params: LabyrinthParams,
    ) -> tuple[jax.Array, LabyrinthState, jax.Array, jax.Array, dict]:
        action = jnp.asarray(action, jnp.int32)
        pos = self._move(state, action)
        new_tile = ~state.explored[pos[0], pos[1]]
        explored = state.explored.at[pos[0], pos[1]].set(True)
        new_state = state.replace(explored=explored, pos=pos, time=state.time + 1)
        reward, terminated = self._reward(new_state, new_tile, params)
        return self._obs(state.grid, pos, action), new_state, reward, terminated, {}


class LabyrinthEscape(Labyrinth):
    """Find the exit: -1/1024 per step, +1 on reaching the goal tile (episode ends)."""

    goal_on_exit = True

    def _reward(self, state, new_tile, params):
        at_goal = state.grid[state.pos[0], state.pos[1]] == GOAL
        step_cost = -1.0 / params.max_steps_in_episode
        reward = (step_cost + jnp.where(at_goal, 1.0, 0.0)).astype(jnp.float32)
        return reward, at_goal


class LabyrinthExplore(Labyrinth):
    """Visit every tile: +1/n_free per new tile, -1/1024 otherwise; ends when all are visited."""

    goal_on_exit = False

    def _reward(self, state, new_tile, params):
        step_cost = -1.0 / params.max_steps_in_episode
        reward = jnp.where(new_tile, 1.0 / self.num_free, step_cost).astype(jnp.float32)
        terminated = jnp.all(state.explored | (state.grid == OBSTACLE))
        return reward, terminated


class LabyrinthEscapeEasy(LabyrinthEscape):
    def __init__(self):
        super().__init__(maze_dims=(10, 10), episode_length=1024)


class LabyrinthEscapeMedium(LabyrinthEscape):
    def __init__(self):
        super().__init__(maze_dims=(14, 14), episode_length=1024)


class LabyrinthEscapeHard(LabyrinthEscape):
    def __init__(self):
        super().__init__(maze_dims=(18, 18), episode_length=1024)


class LabyrinthExploreEasy(LabyrinthExplore):
    def __init__(self):
        super().__init__(maze_dims=(10, 10), episode_length=1024)


class LabyrinthExploreMedium(LabyrinthExplore):
    def __init__(self):
        super().__init__(maze_dims=(14, 14), episode_length=1024)


class LabyrinthExploreHard(LabyrinthExplore):
    def __init__(self):
        super().__init__(maze_dims=(18, 18), episode_length=1024)
