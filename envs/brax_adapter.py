"""Brax environments behind the gymnax 1.x API.

``BraxEnv(name, backend="spring")`` wraps ``brax.envs.get_environment(name, backend=...)``:

* observations are flat float32 vectors, ``observation_space`` is an unbounded ``spaces.Box``;
* actions are ``spaces.Box(-1, 1, (action_size,))`` (clipped to that box before stepping);
* ``terminated`` is brax's ``done`` (e.g. an unhealthy hopper, a fallen pendulum); truncation is
  gymnax's ``state.time >= params.max_steps_in_episode`` (``BraxParams``, default 1000);
* every leaf of the carried brax state is cast to a fixed dtype and shape (taken once from an
  abstract ``reset``), because brax's ``step`` returns weakly-typed leaves that would otherwise
  make a jitted rollout compile a second time on its second call.

Backend: on this 2-core CPU, ``spring`` stepped 256 vmapped inverted pendulums at ~183k steps/s,
``generalized`` ~88k/s, ``positional`` ~39k/s and ``mjx`` ~27k/s (``jax.lax.scan`` of 20 steps,
after compilation); ``spring`` also compiled fastest, so it is the default.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from ssmrl.envs.base import SettingsIdentity

DEFAULT_BACKEND = "spring"


@struct.dataclass
class BraxParams:
    max_steps_in_episode: int = 1000


@struct.dataclass
class BraxState:
    brax_state: Any
    time: jax.Array


def conform(tree: Any, reference: Any) -> Any:
    """Cast every leaf of ``tree`` to the (strong) dtype and shape of the matching ``reference`` leaf.

    ``reference`` is a pytree of ``jax.ShapeDtypeStruct`` (e.g. from ``jax.eval_shape``) or arrays
    with the same structure as ``tree``.
    """

    def fix(x, ref):
        x = jax.lax.convert_element_type(jnp.asarray(x), ref.dtype)
        return jnp.reshape(x, ref.shape)

    return jax.tree.map(fix, tree, reference)


def strong_spec(tree: Any) -> Any:
    """Abstract leaves with canonical (strong) dtypes: the target of :func:`conform`."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jax.dtypes.canonicalize_dtype(jnp.result_type(x))),
                        tree)


class BraxEnv(SettingsIdentity, environment.Environment):
    """A brax environment speaking gymnax 1.x (pure, jittable, auto-resetting through ``step``)."""

    def __init__(self, name: str, backend: str = DEFAULT_BACKEND, max_steps: int = 1000, **kwargs):
        from brax import envs as brax_envs

        self.env_name = name
        self.backend = backend
        self.max_steps = int(max_steps)
        self._kwargs = tuple(sorted(kwargs.items()))
        self.brax_env = brax_envs.get_environment(name, backend=backend, **kwargs)
        self.obs_size = int(self.brax_env.observation_size)
        self.action_size = int(self.brax_env.action_size)
        # Fixed dtypes/shapes of the carried state, from an abstract reset (tracing only, no compile).
        self._state_spec = strong_spec(jax.eval_shape(self.brax_env.reset, jax.random.key(0)))

    # Equality follows the settings, so equal envs share compiled code (gymnax jits with self static).
    def _config(self) -> tuple:
        return (self.env_name, self.backend, self.max_steps, self._kwargs)

    @property
    def default_params(self) -> BraxParams:
        return BraxParams(max_steps_in_episode=self.max_steps)

    def _obs(self, brax_state) -> jax.Array:
        return jnp.reshape(brax_state.obs, (-1,)).astype(jnp.float32)

    def reset_env(self, key: jax.Array, params: BraxParams) -> tuple[jax.Array, BraxState]:
        brax_state = conform(self.brax_env.reset(key), self._state_spec)
        return self._obs(brax_state), BraxState(brax_state=brax_state, time=jnp.int32(0))

    def step_env(self, key: jax.Array, state: BraxState, action: jax.Array, params: BraxParams):
        del key  # brax dynamics are deterministic
        action = jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), (self.action_size,)), -1.0, 1.0)
        brax_state = conform(self.brax_env.step(state.brax_state, action), self._state_spec)
        state = BraxState(brax_state=brax_state, time=state.time + 1)
        reward = jnp.asarray(brax_state.reward, jnp.float32)
        terminated = brax_state.done > 0.5
        return self._obs(brax_state), state, reward, terminated, {}

    def is_terminated(self, state: BraxState, params: BraxParams) -> jax.Array:
        return state.brax_state.done > 0.5

    @property
    def name(self) -> str:
        return f"brax/{self.env_name}"

    @property
    def num_actions(self) -> int:
        return self.action_size

    def action_space(self, params: BraxParams | None = None) -> spaces.Box:
        return spaces.Box(-np.ones(self.action_size, np.float32), np.ones(self.action_size, np.float32),
                          (self.action_size,), jnp.float32)  # per-dimension bounds

    def observation_space(self, params: BraxParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_size,), jnp.float32)
