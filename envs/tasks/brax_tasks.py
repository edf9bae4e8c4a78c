"""Brax task distributions for offline meta-RL (the Meta-DT / varibad / PEARL locomotion suite).

Every environment here speaks gymnax 1.x, carries its task in ``env_params`` (so ``jax.vmap`` over a
batch of params runs many tasks at once) and has no early termination: episodes end only at the
time limit ``params.max_steps_in_episode`` (200), as in the Meta-DT reference.

* :class:`HalfCheetahVel`: reward ``-|v_x - v_target| - 0.05 * |a|^2``; ``v_target ~ U(0, 3)``.
* :class:`HalfCheetahDir`: reward ``direction * v_x - 0.05 * |a|^2``; ``direction in {+1, -1}``.
* :class:`AntDir`: reward ``v_xy . (cos g, sin g) - 0.5 * |a|^2 + 1``; ``g ~ U(0, 2 pi)``
  (the reference's contact cost is left out: brax computes no external contact forces).
* :class:`HopperParams` / :class:`WalkerParams`: reward ``v_x + alive - 1e-3 * |a|^2`` (alive bonus
  0 for the hopper, 1 for the walker, as in the reference); every task scales link masses and
  per-axis inertias by ``1.5^U(-3, 3)``, joint damping by ``1.3^U(-3, 3)`` and geom friction by
  ``1.5^U(-3, 3)`` (rand_param_envs), applied to the brax system inside ``step``/``reset``.

Observations follow the reference: the half cheetah gives ``q[1:], qd, torso xyz`` (20), the ant
``q[2:], qd`` (27), the hopper ``q[1:], qd`` (11) and the walker ``q[1:], qd`` (17).

Damping under the ``spring``/``positional`` backends: those pipelines ignore ``sys.dof.damping``;
here the (randomised) damping of the actuated joints is applied through the actuator's velocity
bias (``bias_qd = -damping / gear^2``, so ``tau = -damping * qd``), which is exact because the
hopper's and walker's unactuated root joints have zero damping. Under ``generalized`` the damping
goes into ``sys.dof.damping``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity
from ssmrl.envs.brax_adapter import DEFAULT_BACKEND, conform, strong_spec

LOG_SCALE_LIMIT = 3.0


@struct.dataclass
class BraxTaskState:
    pipeline_state: Any
    time: jax.Array


@struct.dataclass
class VelParams:
    target_velocity: jax.Array | float = 1.5
    max_steps_in_episode: jax.Array | int = 200


@struct.dataclass
class DirParams:
    direction: jax.Array | float = 1.0
    max_steps_in_episode: jax.Array | int = 200


@struct.dataclass
class AngleParams:
    goal_angle: jax.Array | float = 0.0
    max_steps_in_episode: jax.Array | int = 200


@struct.dataclass
class SysParams:
    """Multiplicative scale factors on the nominal brax system (1 everywhere = the nominal robot)."""

    mass_scale: jax.Array  # (num_links,)
    inertia_scale: jax.Array  # (num_links, 3), per principal axis
    damping_scale: jax.Array  # (qd_size,)
    friction_scale: jax.Array  # (num_geoms, 3)
    max_steps_in_episode: jax.Array | int = 200


class BraxTaskEnv(SettingsIdentity, environment.Environment):
    """Base: a brax robot whose reward and/or system depend on the task in ``params``.

    Subclasses set ``brax_name``, ``reset_noise`` and implement ``_reward``, ``_obs``,
    ``sample_tasks`` and ``nominal_params``; system-varying tasks override ``system``.
    """

    brax_name: str = ""
    reset_noise: float = 0.1
    gaussian_velocity_noise: bool = True  # qd ~ noise * N(0, 1), else U(-noise, noise)
    task_name: str = ""

    def __init__(self, backend: str = DEFAULT_BACKEND, max_steps: int = 200):
        from brax import envs as brax_envs

        self.backend = backend
        self.max_steps = int(max_steps)
        self.brax_env = brax_envs.get_environment(self.brax_name, backend=backend)
        self.sys = self.brax_env.sys
        self._pipeline = self.brax_env._pipeline
        self._n_frames = int(self.brax_env._n_frames)
        self.dt = float(self.brax_env.dt)
        self.action_size = int(self.sys.act_size())
        self._state_spec = strong_spec(jax.eval_shape(
            lambda k: self._init_pipeline(k, self.sys), jax.random.key(0)))
        self.obs_size = int(jax.eval_shape(self._obs, self._state_spec).shape[0])
        self._default_params = None

    # Equality follows the settings, so equal envs share compiled code (gymnax jits with self static).
    def _config(self) -> tuple:
        return (self.backend, self.max_steps)

    # -- tasks ---------------------------------------------------------------------------------
    def sample_tasks(self, rng: np.random.Generator, num_tasks: int):
        """A batch of ``num_tasks`` task params (leading axis) drawn with numpy ``rng``."""
        raise NotImplementedError

    def _batch(self, cls, num_tasks: int, **fields):
        return cls(**{k: jnp.asarray(v, jnp.float32) for k, v in fields.items()},
                   max_steps_in_episode=jnp.full((num_tasks,), self.max_steps, jnp.int32))

    @property
    def default_params(self):
        """The nominal task (e.g. target velocity 1.5, direction +1, unscaled system)."""
        if self._default_params is None:
            self._default_params = self.nominal_params()
        return self._default_params

    def nominal_params(self):
        raise NotImplementedError

    def system(self, params):
        """The brax system for the task in ``params`` (the nominal one unless overridden)."""
        return self.sys

    # -- dynamics ------------------------------------------------------------------------------
    def _init_pipeline(self, key: jax.Array, sys):
        k1, k2 = jax.random.split(key)
        noise = self.reset_noise
        q = self.sys.init_q + jax.random.uniform(k1, (self.sys.q_size(),), minval=-noise, maxval=noise)
        if self.gaussian_velocity_noise:
            qd = noise * jax.random.normal(k2, (self.sys.qd_size(),))
        else:
            qd = jax.random.uniform(k2, (self.sys.qd_size(),), minval=-noise, maxval=noise)
        return self._pipeline.init(sys, q, qd)

    def _obs(self, ps) -> jax.Array:
        raise NotImplementedError

    def _reward(self, ps0, ps1, action, params) -> jax.Array:
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params):
        ps = conform(self._init_pipeline(key, self.system(params)), self._state_spec)
        return self._obs(ps).astype(jnp.float32), BraxTaskState(pipeline_state=ps, time=jnp.int32(0))

    def step_env(self, key: jax.Array, state: BraxTaskState, action: jax.Array, params):
        del key  # the dynamics are deterministic
        sys = self.system(params)
        action = jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), (self.action_size,)), -1.0, 1.0)

        def frame(ps, _):
            return conform(self._pipeline.step(sys, ps, action), self._state_spec), None

        ps0 = state.pipeline_state
        ps1 = jax.lax.scan(frame, ps0, (), self._n_frames)[0]
        reward = self._reward(ps0, ps1, action, params).astype(jnp.float32)
        state = BraxTaskState(pipeline_state=ps1, time=state.time + 1)
        return self._obs(ps1).astype(jnp.float32), state, reward, jnp.bool_(False), {}

    def is_terminated(self, state: BraxTaskState, params) -> jax.Array:
        return jnp.bool_(False)

    @property
    def name(self) -> str:
        return f"tasks/{self.task_name}"

    @property
    def num_actions(self) -> int:
        return self.action_size

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-np.ones(self.action_size, np.float32), np.ones(self.action_size, np.float32),
                          (self.action_size,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_size,), jnp.float32)


# ---------------------------------------------------------------------------------------------
# Half cheetah
# ---------------------------------------------------------------------------------------------
class _HalfCheetahBase(BraxTaskEnv):
    brax_name = "halfcheetah"
    reset_noise = 0.1
    ctrl_cost_weight = 0.05

    def _obs(self, ps) -> jax.Array:
        return jnp.concatenate([ps.q[1:], ps.qd, ps.x.pos[0]])

    def _x_velocity(self, ps0, ps1) -> jax.Array:
        return (ps1.q[0] - ps0.q[0]) / self.dt

    def _ctrl_cost(self, action) -> jax.Array:
        return self.ctrl_cost_weight * jnp.sum(jnp.square(action))


class HalfCheetahVel(_HalfCheetahBase):
    """Half cheetah rewarded for matching a target forward velocity ``params.target_velocity``."""

    task_name = "halfcheetah_vel"
    velocity_low, velocity_high = 0.0, 3.0

    def sample_tasks(self, rng: np.random.Generator, num_tasks: int) -> VelParams:
        v = rng.uniform(self.velocity_low, self.velocity_high, size=(num_tasks,))
        return self._batch(VelParams, num_tasks, target_velocity=v)

    def nominal_params(self) -> VelParams:
        return VelParams(target_velocity=jnp.float32(1.5), max_steps_in_episode=jnp.int32(self.max_steps))

    def _reward(self, ps0, ps1, action, params) -> jax.Array:
        v = self._x_velocity(ps0, ps1)
        return -jnp.abs(v - params.target_velocity) - self._ctrl_cost(action)


class HalfCheetahDir(_HalfCheetahBase):
    """Half cheetah rewarded for running in direction ``params.direction`` (+1 forward, -1 back)."""

    task_name = "halfcheetah_dir"

    def sample_tasks(self, rng: np.random.Generator, num_tasks: int) -> DirParams:
        del rng  # alternating +1, -1, as in the reference (train = test = both directions)
        d = np.array([(-1.0) ** i for i in range(num_tasks)])
        return self._batch(DirParams, num_tasks, direction=d)

    def nominal_params(self) -> DirParams:
        return DirParams(direction=jnp.float32(1.0), max_steps_in_episode=jnp.int32(self.max_steps))

    def _reward(self, ps0, ps1, action, params) -> jax.Array:
        return params.direction * self._x_velocity(ps0, ps1) - self._ctrl_cost(action)


# ---------------------------------------------------------------------------------------------
# Ant
# ---------------------------------------------------------------------------------------------
class AntDir(BraxTaskEnv):
    """Ant rewarded for its torso velocity along the planar direction ``params.goal_angle``."""

    brax_name = "ant"
    task_name = "ant_dir"
    reset_noise = 0.1
    ctrl_cost_weight = 0.5
    survive_reward = 1.0

    def _obs(self, ps) -> jax.Array:
        return jnp.concatenate([ps.q[2:], ps.qd])

    def sample_tasks(self, rng: np.random.Generator, num_tasks: int) -> AngleParams:
        g = rng.uniform(0.0, 2.0 * np.pi, size=(num_tasks,))
        return self._batch(AngleParams, num_tasks, goal_angle=g)

    def nominal_params(self) -> AngleParams:
        return AngleParams(goal_angle=jnp.float32(0.0), max_steps_in_episode=jnp.int32(self.max_steps))

    def _reward(self, ps0, ps1, action, params) -> jax.Array:
        velocity = (ps1.x.pos[0, :2] - ps0.x.pos[0, :2]) / self.dt
        direction = jnp.stack([jnp.cos(params.goal_angle), jnp.sin(params.goal_angle)])
        forward = jnp.dot(velocity, direction)
        return forward - self.ctrl_cost_weight * jnp.sum(jnp.square(action)) + self.survive_reward


# ---------------------------------------------------------------------------------------------
# Hopper / Walker with randomised physical parameters
# ---------------------------------------------------------------------------------------------
class _RandParamsBase(BraxTaskEnv):
    reset_noise = 0.005
    gaussian_velocity_noise = False
    alive_bonus = 0.0
    ctrl_cost_weight = 1e-3
    mass_base = inertia_base = friction_base = 1.5
    damping_base = 1.3

    def __init__(self, backend: str = DEFAULT_BACKEND, max_steps: int = 200):
        super().__init__(backend=backend, max_steps=max_steps)
        act = self.sys.actuator
        self._act_qd_id = np.asarray(act.qd_id)
        unactuated = np.setdiff1d(np.arange(self.sys.qd_size()), self._act_qd_id)
        damping = np.asarray(self.sys.dof.damping)
        self._damping_via_actuator = backend != "generalized"
        if self._damping_via_actuator and np.any(damping[unactuated] != 0):
            raise ValueError(f"{type(self).__name__}: backend {backend!r} applies damping through the "
                             "actuators, but an unactuated joint is damped; use backend='generalized'")

    def _obs(self, ps) -> jax.Array:
        return jnp.concatenate([ps.q[1:], ps.qd])

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        return {"mass_scale": (self.sys.num_links(),), "inertia_scale": (self.sys.num_links(), 3),
                "damping_scale": (self.sys.qd_size(),), "friction_scale": (self.sys.ngeom, 3)}

    def sample_tasks(self, rng: np.random.Generator, num_tasks: int) -> SysParams:
        bases = {"mass_scale": self.mass_base, "inertia_scale": self.inertia_base,
                 "damping_scale": self.damping_base, "friction_scale": self.friction_base}
        fields = {}
        for key, shape in self._shapes().items():
            exponent = rng.uniform(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT, size=(num_tasks, *shape))
            fields[key] = np.power(bases[key], exponent)
        return self._batch(SysParams, num_tasks, **fields)

    def nominal_params(self) -> SysParams:
        return SysParams(**{k: jnp.ones(s, jnp.float32) for k, s in self._shapes().items()},
                         max_steps_in_episode=jnp.int32(self.max_steps))

    def system(self, params: SysParams):
        sys = self.sys
        inertia = sys.link.inertia
        s = jnp.sqrt(params.inertia_scale)  # I' = D^1/2 I D^1/2: scales each principal moment by s
        inertia = inertia.replace(mass=inertia.mass * params.mass_scale,
                                  i=inertia.i * s[:, :, None] * s[:, None, :])
        sys = sys.replace(link=sys.link.replace(inertia=inertia),
                          geom_friction=sys.geom_friction * params.friction_scale)
        damping = sys.dof.damping * params.damping_scale
        if self._damping_via_actuator:
            gear = sys.actuator.gear
            bias_qd = sys.actuator.bias_qd - damping[self._act_qd_id] / jnp.square(gear)
            sys = sys.replace(actuator=sys.actuator.replace(bias_qd=bias_qd))
        else:
            sys = sys.replace(dof=sys.dof.replace(damping=damping))
        return sys

    def _reward(self, ps0, ps1, action, params) -> jax.Array:
        velocity = (ps1.q[0] - ps0.q[0]) / self.dt
        return velocity + self.alive_bonus - self.ctrl_cost_weight * jnp.sum(jnp.square(action))


class HopperParams(_RandParamsBase):
    """Hopper with per-task mass, inertia, damping and friction (no alive bonus, as in Meta-DT)."""

    brax_name = "hopper"
    task_name = "hopper_params"
    alive_bonus = 0.0


class WalkerParams(_RandParamsBase):
    """Walker2d with per-task mass, inertia, damping and friction (alive bonus 1, as in Meta-DT)."""

    brax_name = "walker2d"
    task_name = "walker_params"
    alive_bonus = 1.0
