"""POPGym grid games (Battleship, MineSweeper, LabyrinthEscape, LabyrinthExplore): API, jit/vmap,
return bounds, perfect mazes and optimal play reaching the maximum return."""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.envs.popgym.battleship import BattleshipEasy
from ssmrl.envs.popgym.grids import ENVS
from ssmrl.envs.popgym.labyrinth import GOAL, MOVES, OBSTACLE, START, LabyrinthExploreEasy
from ssmrl.envs.popgym.minesweeper import MineSweeperEasy

NAMES = [
    f"{game}{level}"
    for game in ("Battleship", "MineSweeper", "LabyrinthEscape", "LabyrinthExplore")
    for level in ("Easy", "Medium", "Hard")
]
NUM_ENVS = 4
TOL = 1e-5


HORIZON = {"Battleship": 160, "MineSweeper": 64, "Labyrinth": 256}


def _horizon(name: str) -> int:
    return next(t for prefix, t in HORIZON.items() if name.startswith(prefix))


@functools.lru_cache(maxsize=None)
def rollout_fn(name: str):
    """(env, params, jitted ``run(keys, actions[T, N], params)``): compiled once per env.

    ``run`` resets a batch of envs, then scans ``env.step`` (vmapped) over the given actions and
    returns the first observation and state plus per-step observations, rewards, flags and times.
    """
    env, params = ENVS[name]()

    def run(keys, actions, params):
        obs0, state0 = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def body(state, inputs):
            t, action = inputs
            step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
            obs, state, reward, terminated, truncated, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None)
            )(step_keys, state, action, params)
            out = (obs, reward, terminated, truncated, state.time, info["final_observation"])
            return state, out

        steps = jnp.arange(actions.shape[0])
        _, (obs, reward, terminated, truncated, time, final_obs) = jax.lax.scan(
            body, state0, (steps, actions)
        )
        return dict(
            obs0=obs0, state0=state0, obs=obs, reward=reward, terminated=terminated,
            truncated=truncated, time=time, final_obs=final_obs,
        )

    return env, params, jax.jit(run)


def _keys(seed: int, n: int = NUM_ENVS) -> jax.Array:
    return jax.random.split(jax.random.key(seed), n)


def _initial(name: str, seed: int):
    """Initial states of a batch (the rollout function with all-zero actions)."""
    env, params, run = rollout_fn(name)
    return run(_keys(seed), jnp.zeros((_horizon(name), NUM_ENVS), jnp.int32), params)["state0"]


def _play(name: str, seed: int, plans: list[list[int]], params=None):
    """Play fixed action sequences (one per env) from the seed's initial states.

    Returns ``(returns, lengths, out)`` of each env's first episode.
    """
    env, default, run = rollout_fn(name)
    horizon = _horizon(name)
    assert max(len(p) for p in plans) <= horizon
    actions = np.zeros((horizon, NUM_ENVS), np.int32)
    for i, plan in enumerate(plans):
        actions[: len(plan), i] = plan
    out = run(_keys(seed), jnp.asarray(actions), default if params is None else params)
    done = np.asarray(out["terminated"] | out["truncated"])
    assert done.any(axis=0).all(), "every env must finish its first episode"
    lengths = done.argmax(axis=0) + 1
    live = np.arange(horizon)[:, None] < lengths[None, :]
    returns = np.sum(np.where(live, np.asarray(out["reward"]), 0.0), axis=0)
    return returns, lengths, out


def test_registry_names():
    assert sorted(ENVS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_random_rollout_jit_vmap_and_return_bounds(name):
    env, params, run = rollout_fn(name)
    if name.startswith("Labyrinth"):  # a short time limit exercises truncation and auto-reset
        params = params.replace(max_steps_in_episode=24)
    horizon = _horizon(name)
    n_actions = env.action_space(params).n
    actions = jax.random.randint(jax.random.key(1), (horizon, NUM_ENVS), 0, n_actions)
    out = run(_keys(0), actions, params)
    shape = env.observation_space(params).shape
    obs = np.asarray(out["obs"])
    assert out["obs0"].shape == (NUM_ENVS, *shape) and out["obs0"].dtype == jnp.float32
    assert obs.shape == (horizon, NUM_ENVS, *shape) and out["obs"].dtype == jnp.float32
    assert np.all((obs >= 0.0) & (obs <= 1.0))
    assert out["reward"].dtype == jnp.float32 and out["terminated"].dtype == jnp.bool_
    reward = np.asarray(out["reward"])
    done = np.asarray(out["terminated"] | out["truncated"])
    assert np.all(np.asarray(out["time"])[done] == 0)  # auto-reset restarts the clock
    running = np.zeros(NUM_ENVS)
    for t in range(horizon):  # episode returns (finished or not) stay within [-1, 1]
        running += reward[t]
        assert np.all(np.abs(running) <= 1.0 + TOL), (t, running)
        running[done[t]] = 0.0
    if name.startswith("Labyrinth"):
        assert np.all(np.asarray(out["truncated"]).sum(axis=0) >= horizon // 24 - 1)
    else:
        assert done.any()


def _bfs(grid: np.ndarray, start: tuple[int, int]) -> dict:
    """Shortest-path parents of every non-wall tile reachable from ``start``."""
    parent = {start: None}
    queue = collections.deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nxt = (r + dr, c + dc)
            if (
                0 <= nxt[0] < grid.shape[0]
                and 0 <= nxt[1] < grid.shape[1]
                and grid[nxt] != OBSTACLE
                and nxt not in parent
            ):
                parent[nxt] = (r, c)
                queue.append(nxt)
    return parent


@pytest.mark.parametrize("level", ["Easy", "Medium", "Hard"])
def test_mazes_are_perfect(level):
    for game in ("LabyrinthEscape", "LabyrinthExplore"):
        name = f"{game}{level}"
        env = rollout_fn(name)[0]
        for seed in range(3):
            states = _initial(name, 20 + seed)
            for grid, pos in zip(np.asarray(states.grid), np.asarray(states.pos)):
                _check_maze(env, game, grid, tuple(int(x) for x in pos))


def _check_maze(env, game: str, grid: np.ndarray, start: tuple[int, int]) -> None:
    height, width = grid.shape
    assert (height, width) == env.grid_shape
    assert grid[start] == START
    assert start[0] in (0, height - 1) or start[1] in (0, width - 1)
    goals = [tuple(int(x) for x in g) for g in np.argwhere(grid == GOAL)]
    assert len(goals) == (1 if game == "LabyrinthEscape" else 0)
    # every interior cell is free; the free tiles form a tree (connected, no loops)
    assert np.all(grid[1::2, 1::2] != OBSTACLE)
    assert np.sum(grid == 0) == env.num_free
    open_tiles = grid != OBSTACLE
    edges = np.sum(open_tiles[1:, :] & open_tiles[:-1, :]) + np.sum(
        open_tiles[:, 1:] & open_tiles[:, :-1]
    )
    reachable = _bfs(grid, start)
    assert len(reachable) == np.sum(open_tiles)
    assert edges == len(reachable) - 1
    for goal in goals:  # the exit sits on the wall opposite the start
        assert goal in reachable
        assert abs(goal[0] - start[0]) == height - 1 or abs(goal[1] - start[1]) == width - 1


def test_battleship_optimal_policy_returns_one():
    env = rollout_fn("BattleshipEasy")[0]
    assert isinstance(env, BattleshipEasy) and env.needed_hits == 12
    boards = np.asarray(_initial("BattleshipEasy", 3).board).reshape(NUM_ENVS, -1)
    assert np.all(boards.sum(axis=1) == 12)
    returns, lengths, out = _play("BattleshipEasy", 3, [np.flatnonzero(b) for b in boards])
    np.testing.assert_allclose(returns, 1.0, atol=TOL)
    np.testing.assert_array_equal(lengths, 12)
    assert np.all(np.asarray(out["terminated"])[11])
    np.testing.assert_array_equal(np.asarray(out["final_obs"])[:12, :, 1], 1.0)  # all hits


def test_battleship_misses_and_floor():
    boards = np.asarray(_initial("BattleshipEasy", 4).board).reshape(NUM_ENVS, -1)
    # firing at one empty tile again and again: each shot costs 1/52, the return stops at -1
    plans = [[np.flatnonzero(~b)[0]] * 64 for b in boards]
    returns, lengths, out = _play("BattleshipEasy", 4, plans)
    np.testing.assert_allclose(returns, -1.0, atol=TOL)
    np.testing.assert_array_equal(lengths, 64)
    assert np.all(np.asarray(out["truncated"])[63]) and not np.any(np.asarray(out["terminated"]))
    np.testing.assert_allclose(np.asarray(out["reward"])[:52], -1 / 52, atol=1e-6)


def test_minesweeper_optimal_policy_and_penalties():
    env = rollout_fn("MineSweeperEasy")[0]
    assert isinstance(env, MineSweeperEasy)
    state = _initial("MineSweeperEasy", 5)
    mines = np.asarray(state.mines).reshape(NUM_ENVS, -1)
    counts = np.asarray(state.neighbors).reshape(NUM_ENVS, -1)
    safe = [np.flatnonzero(~m) for m in mines]
    returns, lengths, out = _play("MineSweeperEasy", 5, safe)
    np.testing.assert_allclose(returns, 1.0, atol=TOL)
    np.testing.assert_array_equal(lengths, 14)
    assert np.all(np.asarray(out["terminated"])[13])
    # observation: the mine count of the clicked tile's 3x3 block
    seen = np.argmax(np.asarray(out["final_obs"])[:14], axis=-1)
    np.testing.assert_array_equal(seen, np.stack([c[sf] for c, sf in zip(counts, safe)], axis=1))
    # a repeated click costs 0.5/12; a mine costs 0.5 + 1/14 and ends the episode
    plans = [[sf[0], sf[0], np.flatnonzero(m)[0]] for sf, m in zip(safe, mines)]
    returns, lengths, out = _play("MineSweeperEasy", 5, plans)
    expected = np.asarray([[1 / 14], [-0.5 / 12], [-0.5 - 1 / 14]]) * np.ones((1, NUM_ENVS))
    np.testing.assert_allclose(np.asarray(out["reward"])[:3], expected, atol=TOL)
    np.testing.assert_array_equal(lengths, 3)
    assert np.all(np.asarray(out["terminated"])[2])


def _path_actions(parent: dict, start: tuple[int, int]) -> list[int]:
    """Actions following ``parent`` links (pointing towards the BFS root) from ``start``."""
    actions, node = [], start
    while parent[node] is not None:
        nxt = parent[node]
        actions.append(MOVES.index((nxt[0] - node[0], nxt[1] - node[1])))
        node = nxt
    return actions


@pytest.mark.parametrize("level", ["Easy", "Hard"])
def test_labyrinth_escape_shortest_path_is_optimal(level):
    name = f"LabyrinthEscape{level}"
    state = _initial(name, 11)
    plans = []
    for grid, pos in zip(np.asarray(state.grid), np.asarray(state.pos)):
        goal = tuple(int(x) for x in np.argwhere(grid == GOAL)[0])
        plans.append(_path_actions(_bfs(grid, goal), tuple(int(x) for x in pos)))
    returns, lengths, out = _play(name, 11, plans)
    dists = np.asarray([len(p) for p in plans])
    np.testing.assert_array_equal(lengths, dists)
    assert np.all(np.asarray(out["terminated"])[dists - 1, np.arange(NUM_ENVS)])
    np.testing.assert_allclose(returns, 1.0 - dists / 1024, atol=TOL)


def test_labyrinth_explore_full_tour_terminates():
    env = rollout_fn("LabyrinthExploreEasy")[0]
    assert isinstance(env, LabyrinthExploreEasy)
    state = _initial("LabyrinthExploreEasy", 12)
    plans = []
    for grid, pos in zip(np.asarray(state.grid), np.asarray(state.pos)):
        # a depth-first tour of the tree of free tiles, cut at the last new tile
        start = tuple(int(x) for x in pos)
        tour, seen, stack = [start], {start}, [start]
        while stack:
            node = stack[-1]
            children = [
                (node[0] + dr, node[1] + dc)
                for dr, dc in MOVES
                if 0 <= node[0] + dr < grid.shape[0]
                and 0 <= node[1] + dc < grid.shape[1]
                and grid[node[0] + dr, node[1] + dc] != OBSTACLE
                and (node[0] + dr, node[1] + dc) not in seen
            ]
            if children:
                seen.add(children[0])
                stack.append(children[0])
            else:
                stack.pop()
            if stack:
                tour.append(stack[-1])
        while tour[-1] in tour[:-1]:  # drop the final walk back
            tour.pop()
        plans.append([MOVES.index((b[0] - a[0], b[1] - a[1])) for a, b in zip(tour, tour[1:])])
    returns, lengths, out = _play("LabyrinthExploreEasy", 12, plans)
    np.testing.assert_array_equal(lengths, [len(p) for p in plans])
    assert np.all(np.asarray(out["terminated"])[lengths - 1, np.arange(NUM_ENVS)])
    revisits = lengths - env.num_free
    np.testing.assert_allclose(returns, 1.0 - revisits / 1024, atol=TOL)
