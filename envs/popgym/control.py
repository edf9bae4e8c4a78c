"""POPGym's stateless (position-only) control games in pure JAX.

- StatelessCartPole: gymnasium's CartPole-v1 dynamics (Euler, dt 0.02, force +-10, start state
  U(-0.05, 0.05)^4, ends (terminated) when |x| > 2.4 or |theta| > 12 degrees). The observation is
  only ``[x, theta]`` (no velocities); observation space +-[4.8, 24 degrees]. Two actions (0 push
  left, 1 push right). Every step, the last one included, rewards 1/L, so an episode's return is
  (steps survived)/L in [0, 1]; truncated after L steps. Easy L=200, Medium 400, Hard 600.
- NoisyStatelessCartPole: the same with N(0, sigma^2) noise added to the observation, clipped
  to the observation space; L=200. Easy sigma 0.1, Medium 0.2, Hard 0.3.
- StatelessPendulum: gymnasium's Pendulum-v1 dynamics (g 10, m 1, l 1, dt 0.05, torque clipped
  to [-2, 2], speed clipped to [-8, 8], start theta ~ U(-pi, pi), theta_dot ~ U(-1, 1)). The
  observation is ``[cos theta, sin theta]`` (no angular velocity); the action is a torque,
  Box(-2, 2, (1,)). Pendulum's reward -(theta^2 + 0.1 theta_dot^2 + 0.001 u^2), which lies in
  [-16.2736044, 0], is mapped linearly onto [-1, 1] and divided by L. No termination; truncated
  after L steps. Easy L=200, Medium 150, Hard 100.
- NoisyStatelessPendulum: with N(0, sigma^2) observation noise clipped to [-1, 1]; L=200.
  Easy sigma 0.1, Medium 0.2, Hard 0.3.

Episode length and noise level live in the params (they change no shapes).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from ssmrl.envs.popgym._common import PopGymEnv


@struct.dataclass
class ControlParams:
    max_steps_in_episode: int = 200
    noise_sigma: float = 0.0


def _noisy(key, obs, sigma, high):
    noise = sigma * jax.random.normal(key, obs.shape, jnp.float32)
    return jnp.clip(obs + noise, -high, high)


class _ControlEnv(PopGymEnv):
    noisy = False

    def __init__(self, max_episode_length: int = 200, noise_sigma: float = 0.0):
        super().__init__()
        self.max_episode_length = self.max_steps = max_episode_length
        self.noise_sigma = float(noise_sigma)

    def _config(self):
        return (self.max_episode_length, self.noise_sigma)

    @property
    def default_params(self) -> ControlParams:
        return ControlParams(self.max_episode_length, self.noise_sigma)

    def _observe(self, key, obs, params):
        if self.noisy:
            obs = _noisy(key, obs, params.noise_sigma, self._obs_high)
        return obs


# --------------------------------------------------------------------------- CartPole
GRAVITY, MASS_CART, MASS_POLE, HALF_LENGTH = 9.8, 1.0, 0.1, 0.5
TOTAL_MASS = MASS_CART + MASS_POLE
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG, TAU = 10.0, 0.02
THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4


@struct.dataclass
class CartPoleState:
    time: int
    x: jax.Array
    x_dot: jax.Array
    theta: jax.Array
    theta_dot: jax.Array


class StatelessCartPole(_ControlEnv):
    _obs_high = np.array([X_LIMIT * 2, THETA_LIMIT * 2], np.float32)

    def reset_env(self, key, params):
        k_state, k_obs = jax.random.split(key) if self.noisy else (key, None)
        x, x_dot, theta, theta_dot = jax.random.uniform(k_state, (4,), jnp.float32, -0.05, 0.05)
        state = CartPoleState(0, x, x_dot, theta, theta_dot)
        return self._observe(k_obs, jnp.stack([x, theta]), params), state

    def step_env(self, key, state, action, params):
        force = jnp.where(action == 1, FORCE_MAG, -FORCE_MAG)
        cos, sin = jnp.cos(state.theta), jnp.sin(state.theta)
        temp = (force + POLE_MASS_LENGTH * state.theta_dot**2 * sin) / TOTAL_MASS
        theta_acc = (GRAVITY * sin - cos * temp) / (
            HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos**2 / TOTAL_MASS)
        )
        x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
        x = state.x + TAU * state.x_dot
        x_dot = state.x_dot + TAU * x_acc
        theta = state.theta + TAU * state.theta_dot
        theta_dot = state.theta_dot + TAU * theta_acc
        new = CartPoleState(state.time + 1, x, x_dot, theta, theta_dot)
        terminated = (jnp.abs(x) > X_LIMIT) | (jnp.abs(theta) > THETA_LIMIT)
        reward = (1.0 / params.max_steps_in_episode) * jnp.ones((), jnp.float32)
        obs = self._observe(key, jnp.stack([x, theta]), params)
        return obs, new, reward, terminated, {}

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params=None):
        return spaces.Box(-self._obs_high, self._obs_high, (2,), jnp.float32)


class NoisyStatelessCartPole(StatelessCartPole):
    noisy = True

    def __init__(self, noise_sigma: float = 0.1, max_episode_length: int = 200):
        super().__init__(max_episode_length=max_episode_length, noise_sigma=noise_sigma)


# --------------------------------------------------------------------------- Pendulum
PEND_G, PEND_M, PEND_L, PEND_DT = 10.0, 1.0, 1.0, 0.05
MAX_SPEED, MAX_TORQUE = 8.0, 2.0
MIN_REWARD = -16.2736044  # -(pi^2 + 0.1 * 8^2 + 0.001 * 2^2)


@struct.dataclass
class PendulumState:
    time: int
    theta: jax.Array
    theta_dot: jax.Array


class StatelessPendulum(_ControlEnv):
    _obs_high = np.ones((2,), np.float32)

    def reset_env(self, key, params):
        k_state, k_obs = jax.random.split(key) if self.noisy else (key, None)
        u = jax.random.uniform(k_state, (2,), jnp.float32, -1.0, 1.0)
        theta, theta_dot = math.pi * u[0], u[1]
        obs = jnp.stack([jnp.cos(theta), jnp.sin(theta)])
        return self._observe(k_obs, obs, params), PendulumState(0, theta, theta_dot)

    def step_env(self, key, state, action, params):
        u = jnp.clip(jnp.reshape(action, ()).astype(jnp.float32), -MAX_TORQUE, MAX_TORQUE)
        th, thdot = state.theta, state.theta_dot
        angle = ((th + math.pi) % (2 * math.pi)) - math.pi
        cost = angle**2 + 0.1 * thdot**2 + 0.001 * u**2
        half = -MIN_REWARD / 2
        reward = ((half - cost) / half / params.max_steps_in_episode).astype(jnp.float32)
        acc = 3 * PEND_G / (2 * PEND_L) * jnp.sin(th) + 3.0 / (PEND_M * PEND_L**2) * u
        thdot = thdot + acc * PEND_DT
        thdot = jnp.clip(thdot, -MAX_SPEED, MAX_SPEED)
        th = th + thdot * PEND_DT
        new = PendulumState(state.time + 1, th, thdot)
        obs = self._observe(key, jnp.stack([jnp.cos(th), jnp.sin(th)]), params)
        return obs, new, reward, jnp.bool_(False), {}

    def action_space(self, params=None):
        return spaces.Box(-MAX_TORQUE, MAX_TORQUE, (1,), jnp.float32)

    def observation_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)


class NoisyStatelessPendulum(StatelessPendulum):
    noisy = True

    def __init__(self, noise_sigma: float = 0.1, max_episode_length: int = 200):
        super().__init__(max_episode_length=max_episode_length, noise_sigma=noise_sigma)
