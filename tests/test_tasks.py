"""Task distributions for offline meta-RL (envs/tasks): PointRobot, brax locomotion tasks, splits.

Kept small: one brax compile (HalfCheetahVel's vmapped step); the randomised Hopper/Walker systems
are checked without stepping them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import envs
from ssmrl.envs.tasks import (
    TASKS,
    HalfCheetahVel,
    PointRobot,
    index_params,
    make_env,
    num_tasks,
    task_params,
    task_split,
)
from ssmrl.envs.tasks.brax_tasks import VelParams
from ssmrl.envs.tasks.point_robot import PointRobotParams

SPLIT_SIZES = {
    "tasks/point_robot": (45, 5),
    "tasks/halfcheetah_vel": (45, 5),
    "tasks/halfcheetah_dir": (2, 2),
    "tasks/ant_dir": (45, 5),
    "tasks/hopper_params": (45, 5),
    "tasks/walker_params": (45, 5),
}


def _rows(batch) -> np.ndarray:
    """One flat row per task of every float leaf except the time limit."""
    leaves = [np.asarray(x).reshape(num_tasks(batch), -1) for x in jax.tree.leaves(batch)
              if np.issubdtype(np.asarray(x).dtype, np.floating)]
    return np.concatenate(leaves, axis=1)


def _point_rollout(env, params, policy, key, steps):
    n = num_tasks(params)
    obs, state = jax.vmap(env.reset)(jax.random.split(key, n), params)

    def body(carry, k):
        obs, state = carry
        action = policy(obs, params, k)
        obs, state, reward, terminated, truncated, _ = jax.vmap(env.step)(jax.random.split(k, n), state, action,
                                                                           params)
        return (obs, state), (reward, terminated, truncated)

    _, out = jax.lax.scan(body, (obs, state), jax.random.split(key, steps))
    return out


def test_registry_names_and_unknown():
    names = set(envs.available())
    assert set(TASKS) <= names
    env, params = envs.make("tasks/point_robot")
    assert isinstance(env, PointRobot) and isinstance(params, PointRobotParams)
    with pytest.raises(ValueError, match="tasks/point_robot"):
        envs.make("tasks/no_such_task")
    with pytest.raises(ValueError, match="tasks/halfcheetah_vel"):
        task_split("tasks/no_such_task")


def test_point_robot_reset_step_jit_vmap():
    env, default = envs.make("tasks/point_robot")
    obs, state = env.reset(jax.random.key(0), default)
    assert obs.shape == (2,) and obs.dtype == jnp.float32 and np.all(np.asarray(obs) == 0)
    obs, state, reward, terminated, truncated, _ = env.step(jax.random.key(1), state, jnp.array([0.5, -0.05]),
                                                            default)
    np.testing.assert_allclose(np.asarray(obs), [0.1, -0.05], atol=1e-6)  # clipped to the action box
    np.testing.assert_allclose(float(reward), -np.hypot(0.1, 0.05), rtol=1e-5)
    assert reward.dtype == jnp.float32 and not bool(terminated) and not bool(truncated)

    # Two tasks, same trajectory: the observations agree, the rewards differ.
    params = PointRobotParams(goal=jnp.array([[1.0, 1.0], [-1.0, -1.0]]), max_steps_in_episode=jnp.array([20, 20]))
    step = jax.jit(jax.vmap(env.step))
    keys = jax.random.split(jax.random.key(2), 2)
    obs, state = jax.vmap(env.reset)(keys, params)
    action = jnp.full((2, 2), 0.1)
    for t in range(20):
        obs, state, reward, terminated, truncated, _ = step(keys, state, action, params)
        assert not bool(terminated.any())
        assert bool(truncated.all()) == (t == 19)  # time limit only, at the horizon
        if t == 0:
            assert float(reward[0]) > float(reward[1])
            np.testing.assert_allclose(np.asarray(obs[0]), np.asarray(obs[1]))
    assert step._cache_size() == 1  # stable dtypes: the jitted step compiled once
    np.testing.assert_allclose(np.asarray(obs), 0.0, atol=1e-6)  # auto-reset to the origin


def test_point_robot_oracle_beats_random():
    env = make_env("tasks/point_robot")
    train, _ = task_split("tasks/point_robot")

    def oracle(obs, params, key):
        return jnp.clip(params.goal - obs, -0.1, 0.1)

    def random(obs, params, key):
        return jax.random.uniform(key, obs.shape, minval=-0.1, maxval=0.1)

    returns = {}
    for name, policy in [("oracle", oracle), ("random", random)]:
        reward, _, truncated = jax.jit(lambda k, p: _point_rollout(env, train, p, k, 20),
                                       static_argnums=1)(jax.random.key(0), policy)
        assert bool(truncated[-1].all()) and not bool(truncated[:-1].any())
        returns[name] = np.asarray(reward.sum(0))
    assert returns["oracle"].shape == (45,)
    assert np.all(returns["oracle"] > returns["random"])


@pytest.mark.parametrize("name", sorted(SPLIT_SIZES))
def test_split_deterministic_disjoint_sizes(name):
    train, test = task_split(name, seed=0)
    n_train, n_test = SPLIT_SIZES[name]
    assert num_tasks(train) == n_train and num_tasks(test) == n_test
    assert np.all(np.asarray(train.max_steps_in_episode) == (20 if name == "tasks/point_robot" else 200))
    train2, test2 = task_split(name, seed=0)
    for a, b in [(train, train2), (test, test2)]:
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
    rows_train, rows_test = _rows(train), _rows(test)
    if name == "tasks/halfcheetah_dir":  # the reference's two directions, in both halves
        assert sorted(rows_train[:, 0]) == sorted(rows_test[:, 0]) == [-1.0, 1.0]
        return
    assert len(np.unique(rows_train, axis=0)) == n_train
    assert not any(np.any(np.all(rows_train == row, axis=1)) for row in rows_test)  # disjoint
    other, _ = task_split(name, seed=1)
    assert not np.array_equal(_rows(other), rows_train)  # the seed matters


def test_task_ranges():
    goals = np.asarray(task_params("tasks/point_robot").goal)
    assert goals.shape == (50, 2) and np.all(np.abs(goals) <= 1.0)
    vel = np.asarray(task_params("tasks/halfcheetah_vel").target_velocity)
    assert vel.shape == (50,) and np.all((vel >= 0.0) & (vel <= 3.0))
    angle = np.asarray(task_params("tasks/ant_dir").goal_angle)
    assert np.all((angle >= 0.0) & (angle <= 2 * np.pi))
    scales = task_params("tasks/hopper_params")
    for leaf, base in [(scales.mass_scale, 1.5), (scales.inertia_scale, 1.5), (scales.friction_scale, 1.5),
                       (scales.damping_scale, 1.3)]:
        exponent = np.log(np.asarray(leaf)) / np.log(base)
        assert np.all(np.abs(exponent) <= 3.0 + 1e-5) and exponent.std() > 1.0


@pytest.mark.parametrize("name", ["tasks/hopper_params", "tasks/walker_params"])
def test_parameter_randomisation_changes_system(name):
    """The task params reach the brax system (checked eagerly, without a brax compile)."""
    env = make_env(name)
    train, _ = task_split(name)
    nominal = env.system(env.default_params)
    np.testing.assert_allclose(np.asarray(nominal.link.inertia.mass), np.asarray(env.sys.link.inertia.mass))
    sys0, sys1 = env.system(index_params(train, 0)), env.system(index_params(train, 1))
    for sys, task in [(sys0, index_params(train, 0)), (sys1, index_params(train, 1))]:
        np.testing.assert_allclose(np.asarray(sys.link.inertia.mass),
                                   np.asarray(env.sys.link.inertia.mass) * np.asarray(task.mass_scale), rtol=1e-5)
        diag = np.diagonal(np.asarray(sys.link.inertia.i), axis1=-2, axis2=-1)
        nominal_diag = np.diagonal(np.asarray(env.sys.link.inertia.i), axis1=-2, axis2=-1)
        np.testing.assert_allclose(diag, nominal_diag * np.asarray(task.inertia_scale), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(sys.geom_friction),
                                   np.asarray(env.sys.geom_friction) * np.asarray(task.friction_scale), rtol=1e-5)
        # Spring backend: damping enters as the actuators' velocity bias, tau = -gear^2 * bias_qd * qd.
        damping = np.asarray(env.sys.dof.damping) * np.asarray(task.damping_scale)
        act = sys.actuator
        np.testing.assert_allclose(-np.asarray(act.bias_qd) * np.asarray(act.gear) ** 2,
                                   damping[np.asarray(act.qd_id)], rtol=1e-5)
    assert not np.allclose(np.asarray(sys0.link.inertia.mass), np.asarray(sys1.link.inertia.mass))
    assert not np.allclose(np.asarray(sys0.geom_friction), np.asarray(sys1.geom_friction))
    # Generalized backend: the damping goes into the dofs themselves (construction only, no compile).
    generalized = make_env(name, backend="generalized")
    np.testing.assert_allclose(np.asarray(generalized.system(index_params(train, 0)).dof.damping),
                               np.asarray(env.sys.dof.damping) * np.asarray(index_params(train, 0).damping_scale),
                               rtol=1e-5)
    obs_space = env.observation_space(env.default_params)
    assert obs_space.shape == ({"tasks/hopper_params": 11, "tasks/walker_params": 17}[name],)


def test_halfcheetah_vel_vmapped_tasks():
    """One brax compile: a vmapped step over two target velocities, 200 steps, same actions."""
    env, default = envs.make("tasks/halfcheetah_vel")
    assert isinstance(env, HalfCheetahVel) and env.observation_space(default).shape == (20,)
    assert env.action_space(default).shape == (6,)
    params = VelParams(target_velocity=jnp.array([0.0, 3.0], jnp.float32),
                       max_steps_in_episode=jnp.array([200, 200], jnp.int32))
    keys = jnp.stack([jax.random.key(0)] * 2)  # same start state for both tasks
    obs, state = jax.vmap(env.reset_env)(keys, params)  # eager: no second compile
    step = jax.jit(jax.vmap(env.step))
    actions = 0.5 * jnp.sin(jnp.arange(200)[:, None, None] * 0.3 + jnp.arange(6)[None, None, :])
    actions = jnp.broadcast_to(actions, (200, 2, 6))
    rewards, truncs = [], []
    for t in range(200):
        obs, state, reward, terminated, truncated, info = step(keys, state, actions[t], params)
        assert not bool(terminated.any())
        rewards.append(np.asarray(reward))
        truncs.append(np.asarray(truncated))
        if t == 0:
            assert obs.dtype == jnp.float32 and reward.dtype == jnp.float32
            # the dynamics do not depend on the task: the same actions give the same states
            np.testing.assert_allclose(np.asarray(obs[0]), np.asarray(obs[1]), atol=1e-5)
    assert step._cache_size() == 1  # stable dtypes: the jitted step compiled once
    truncs = np.stack(truncs)
    assert not truncs[:-1].any() and truncs[-1].all()  # no early termination, time limit at 200
    rewards = np.stack(rewards)
    assert np.all(np.isfinite(rewards))
    # same x-velocity v and control cost c: r0 - r1 = |v - 3| - |v - 0|
    assert not np.allclose(rewards[:, 0], rewards[:, 1])
    assert np.all(rewards <= 0.0)
