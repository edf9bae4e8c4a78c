"""PointRobot: a 2-D point moved by bounded position increments toward a per-task goal.

Follows the point-robot task of varibad / PEARL as used by Meta-DT:

* the agent starts at the origin (no reset noise); the observation is its position (2,);
* an action is a displacement, clipped to ``[-0.1, 0.1]^2``, added to the position;
* reward = ``-||position - goal||_2`` after the move; there is no terminal state, episodes end only
  at the time limit (20 steps);
* a task is a goal position drawn from ``U(-1, 1)^2`` and carried in :class:`PointRobotParams`, so
  ``jax.vmap`` over a batch of params runs many tasks at once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity

MAX_ACTION = 0.1


@struct.dataclass
class PointRobotParams:
    goal: jax.Array = struct.field(default_factory=lambda: jnp.zeros((2,), jnp.float32))
    max_steps_in_episode: jax.Array | int = 20


@struct.dataclass
class PointRobotState:
    position: jax.Array
    time: jax.Array


class PointRobot(SettingsIdentity, environment.Environment):
    """2-D point robot; the task (goal) lives in ``params.goal``."""

    def __init__(self, max_steps: int = 20, goal_low: float = -1.0, goal_high: float = 1.0):
        self.max_steps = int(max_steps)
        self.goal_low = float(goal_low)
        self.goal_high = float(goal_high)
        self.obs_size = 2
        self.action_size = 2

    def _config(self) -> tuple:
        return (self.max_steps, self.goal_low, self.goal_high)

    # -- tasks ---------------------------------------------------------------------------------
    def sample_tasks(self, rng: np.random.Generator, num_tasks: int) -> PointRobotParams:
        """A batch of ``num_tasks`` task params (leading axis) drawn with numpy ``rng``."""
        goals = rng.uniform(self.goal_low, self.goal_high, size=(num_tasks, 2)).astype(np.float32)
        return PointRobotParams(goal=jnp.asarray(goals),
                                max_steps_in_episode=jnp.full((num_tasks,), self.max_steps, jnp.int32))

    @property
    def default_params(self) -> PointRobotParams:
        return PointRobotParams(goal=jnp.zeros((2,), jnp.float32),
                                max_steps_in_episode=jnp.int32(self.max_steps))

    # -- dynamics ------------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: PointRobotParams):
        del key
        state = PointRobotState(position=jnp.zeros((2,), jnp.float32), time=jnp.int32(0))
        return state.position, state

    def step_env(self, key: jax.Array, state: PointRobotState, action: jax.Array, params: PointRobotParams):
        del key
        action = jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), (2,)), -MAX_ACTION, MAX_ACTION)
        position = state.position + action
        goal = jnp.asarray(params.goal, jnp.float32)
        reward = -jnp.sqrt(jnp.sum(jnp.square(position - goal)))
        state = PointRobotState(position=position, time=state.time + 1)
        return position, state, reward.astype(jnp.float32), jnp.bool_(False), {}

    def is_terminated(self, state: PointRobotState, params: PointRobotParams) -> jax.Array:
        return jnp.bool_(False)

    @property
    def name(self) -> str:
        return "tasks/point_robot"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params: PointRobotParams | None = None) -> spaces.Box:
        return spaces.Box(-MAX_ACTION, MAX_ACTION, (2,), jnp.float32)

    def observation_space(self, params: PointRobotParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (2,), jnp.float32)
