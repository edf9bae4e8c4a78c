"""A task-conditioned view of a task distribution, for training one data-collection agent.

:class:`TaskConditioned` draws a task from a fixed batch of task params at every reset and appends the
task's features (the float leaves of its params: PointRobot's goal) to the observation. Registered as
``conditioned/<name>`` for every task distribution, e.g.
``envs.make("conditioned/tasks/point_robot", split="train", split_seed=0)``.

Actions are rescaled: the wrapper's action space is ``[-1, 1]^A`` and maps linearly onto the base
env's Box, so a Gaussian policy starting at unit std is not saturated by PointRobot's ``[-0.1, 0.1]``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity

PREFIX = "conditioned/"


@struct.dataclass
class ConditionedParams:
    tasks: Any  # base env params with a leading task axis [N, ...]
    max_steps_in_episode: int = struct.field(pytree_node=False, default=20)


@struct.dataclass
class ConditionedState:
    inner: Any
    task: jax.Array  # int index into params.tasks
    time: jax.Array


def task_features(params: Any) -> jax.Array:
    """The float leaves of one task's params, flattened and concatenated (PointRobot: the goal)."""
    leaves = [jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(params)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    return jnp.concatenate(leaves)


class TaskConditioned(SettingsIdentity, environment.Environment):
    """Wraps a task env: a task is drawn uniformly from ``params.tasks`` at reset; obs = [obs, task]."""

    def __init__(self, base: Any):
        self.base = base
        space = base.action_space(base.default_params)
        self.low = np.asarray(space.low, np.float32) * np.ones(space.shape, np.float32)
        self.high = np.asarray(space.high, np.float32) * np.ones(space.shape, np.float32)
        self.base_obs_dim = int(np.prod(base.observation_space(base.default_params).shape))
        self.task_dim = int(task_features(base.default_params).shape[0])

    def _config(self) -> tuple:
        return (self.base,)

    @property
    def default_params(self) -> ConditionedParams:
        tasks = jax.tree.map(lambda x: jnp.asarray(x)[None], self.base.default_params)
        return ConditionedParams(tasks=tasks, max_steps_in_episode=int(self.base.default_params.max_steps_in_episode))

    def to_base_action(self, action: jax.Array) -> jax.Array:
        """``[-1, 1]^A -> [low, high]`` (clipped)."""
        a = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)

    def _task(self, params: ConditionedParams, index: jax.Array) -> Any:
        return jax.tree.map(lambda x: x[index], params.tasks)

    def _obs(self, obs: jax.Array, task: Any) -> jax.Array:
        return jnp.concatenate([jnp.ravel(obs).astype(jnp.float32), task_features(task)])

    def reset_env(self, key: jax.Array, params: ConditionedParams):
        k_task, k_reset = jax.random.split(key)
        n = jax.tree.leaves(params.tasks)[0].shape[0]
        index = jax.random.randint(k_task, (), 0, n)
        task = self._task(params, index)
        obs, inner = self.base.reset_env(k_reset, task)
        return self._obs(obs, task), ConditionedState(inner=inner, task=index, time=jnp.int32(0))

    def step_env(self, key: jax.Array, state: ConditionedState, action: jax.Array, params: ConditionedParams):
        task = self._task(params, state.task)
        obs, inner, reward, terminated, info = self.base.step_env(key, state.inner, self.to_base_action(action), task)
        state = ConditionedState(inner=inner, task=state.task, time=state.time + 1)
        return self._obs(obs, task), state, reward, terminated, info

    def is_terminated(self, state: ConditionedState, params: ConditionedParams) -> jax.Array:
        return self.base.is_terminated(state.inner, self._task(params, state.task))

    @property
    def name(self) -> str:
        return PREFIX + self.base.name

    @property
    def num_actions(self) -> int:
        return int(self.low.size)

    def action_space(self, params: ConditionedParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, self.low.shape, jnp.float32)

    def observation_space(self, params: ConditionedParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.base_obs_dim + self.task_dim,), jnp.float32)


def conditioned_params(env: TaskConditioned, tasks: Any) -> ConditionedParams:
    """Params drawing from the task batch ``tasks`` (leading task axis)."""
    return ConditionedParams(tasks=tasks, max_steps_in_episode=int(env.base.default_params.max_steps_in_episode))


def make_conditioned(base_name: str, split: str = "train", split_seed: int = 0, **options) -> tuple[Any, Any]:
    """Registry builder: the wrapper around ``base_name`` drawing tasks from one split of ``task_split``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    from ssmrl.envs.tasks import make_env, task_split  # the registry module imports this one

    env = TaskConditioned(make_env(base_name, **options))
    train, test = task_split(base_name, split_seed, **options)
    return env, conditioned_params(env, train if split == "train" else test)
