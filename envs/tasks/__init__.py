"""Task distributions for offline meta-RL (Meta-DT's suite), as gymnax environments.

Each distribution is one environment class whose task lives in ``env_params``; a batch of params
(every leaf with a leading task axis) runs many tasks at once under ``jax.vmap``::

    env, params = make_task("tasks/point_robot")
    train, test = task_split("tasks/point_robot", seed=0)   # batches of 45 and 5 task params
    obs, state = jax.vmap(env.reset)(keys, train)
    obs, state, r, term, trunc, info = jax.vmap(env.step)(keys, state, actions, train)

``task_split`` draws ``num_tasks`` tasks with ``numpy.random.default_rng(seed)`` and returns the
first ``num_train`` as the training batch and the rest as the test batch (the reference's layout).

========================  ==================  =====  =========  =======
registry name             class               tasks  train/test horizon
========================  ==================  =====  =========  =======
``tasks/point_robot``     PointRobot          50     45 / 5     20
``tasks/halfcheetah_vel`` HalfCheetahVel      50     45 / 5     200
``tasks/halfcheetah_dir`` HalfCheetahDir      4      2 / 2      200
``tasks/ant_dir``         AntDir              50     45 / 5     200
``tasks/hopper_params``   HopperParams        50     45 / 5     200
``tasks/walker_params``   WalkerParams        50     45 / 5     200
========================  ==================  =====  =========  =======

HalfCheetahDir follows the reference: tasks alternate +1, -1, so its train and test batches hold
the same two directions (it tests adaptation, not generalisation).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from ssmrl.envs.tasks.brax_tasks import (
    AngleParams,
    AntDir,
    BraxTaskEnv,
    BraxTaskState,
    DirParams,
    HalfCheetahDir,
    HalfCheetahVel,
    HopperParams,
    SysParams,
    VelParams,
    WalkerParams,
)
from ssmrl.envs.tasks.conditioned import PREFIX, TaskConditioned, make_conditioned
from ssmrl.envs.tasks.point_robot import PointRobot, PointRobotParams, PointRobotState


class TaskSpec(NamedTuple):
    env_cls: type
    num_tasks: int
    num_train: int


TASKS: dict[str, TaskSpec] = {
    "tasks/point_robot": TaskSpec(PointRobot, 50, 45),
    "tasks/halfcheetah_vel": TaskSpec(HalfCheetahVel, 50, 45),
    "tasks/halfcheetah_dir": TaskSpec(HalfCheetahDir, 4, 2),
    "tasks/ant_dir": TaskSpec(AntDir, 50, 45),
    "tasks/hopper_params": TaskSpec(HopperParams, 50, 45),
    "tasks/walker_params": TaskSpec(WalkerParams, 50, 45),
}


def _spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task distribution {name!r}; valid: {sorted(TASKS)}")
    return TASKS[name]


@functools.lru_cache(maxsize=None)
def _cached_env(name: str, options: tuple) -> Any:
    return _spec(name).env_cls(**dict(options))


def make_env(name: str, **options) -> Any:
    """The environment of distribution ``name`` (cached per ``(name, options)``)."""
    return _cached_env(name, tuple(sorted(options.items())))


def make_task(name: str, **options) -> tuple[Any, Any]:
    """Registry builder: ``(env, default_params)``; the defaults are the nominal task."""
    env = make_env(name, **options)
    return env, env.default_params


def task_params(name: str, seed: int = 0, **options) -> Any:
    """All ``num_tasks`` task params of distribution ``name`` as one batch (leading task axis)."""
    spec = _spec(name)
    env = make_env(name, **options)
    return env.sample_tasks(np.random.default_rng(seed), spec.num_tasks)


def task_split(name: str, seed: int = 0, **options) -> tuple[Any, Any]:
    """Fixed seeded split ``(train_params_batch, test_params_batch)`` of distribution ``name``."""
    spec = _spec(name)
    tasks = task_params(name, seed, **options)
    train = jax.tree.map(lambda x: x[:spec.num_train], tasks)
    test = jax.tree.map(lambda x: x[spec.num_train:], tasks)
    return train, test


def index_params(batch: Any, i: int) -> Any:
    """Task ``i`` of a params batch."""
    return jax.tree.map(lambda x: x[i], batch)


def num_tasks(batch: Any) -> int:
    """How many tasks a params batch holds."""
    return int(jax.tree.leaves(batch)[0].shape[0])


BUILDERS: dict[str, Callable[..., tuple[Any, Any]]] = {
    **{name: functools.partial(make_task, name) for name in TASKS},
    # One env drawing a task of a split at every reset, task features appended: data collection.
    **{PREFIX + name: functools.partial(make_conditioned, name) for name in TASKS},
}

__all__ = [
    "AngleParams", "AntDir", "BUILDERS", "BraxTaskEnv", "BraxTaskState", "DirParams", "HalfCheetahDir",
    "HalfCheetahVel", "HopperParams", "PointRobot", "PointRobotParams", "PointRobotState", "SysParams",
    "TASKS", "TaskConditioned", "TaskSpec", "VelParams", "WalkerParams", "index_params", "make_conditioned",
    "make_env", "make_task", "num_tasks", "task_params", "task_split",
]
