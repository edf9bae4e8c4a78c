"""POPGym's episodic multi-armed bandit in pure JAX.

Each episode draws a payout probability ``p_i ~ U[0, 1)`` per arm. Pulling arm ``a`` pays with
probability ``p_a``: the observation is the one-hot outcome (index 1 = paid) and the reward is
+1/L when it pays, -1/L otherwise. The first observation is "not paid". No termination; the
episode is truncated after L steps. Easy 10 arms L=200, Medium 20 arms L=400, Hard 30 arms
L=600. As in POPGym the observation does not contain the arm just pulled (POPGym marks this game
``obs_requires_prev_action``): agents should add the previous action to their inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from ssmrl.envs.popgym._common import PopGymEnv, PopGymParams, one_hot


@struct.dataclass
class BanditState:
    time: int
    probs: jax.Array  # (arms,)


class MultiarmedBandit(PopGymEnv):
    def __init__(self, num_bandits: int = 10, episode_length: int = 200):
        super().__init__()
        self.num_bandits = num_bandits
        self.max_episode_length = self.max_steps = episode_length

    def _config(self):
        return (self.num_bandits, self.max_episode_length)

    def reset_env(self, key, params: PopGymParams):
        probs = jax.random.uniform(key, (self.num_bandits,))
        return one_hot(0, 2), BanditState(0, probs)

    def step_env(self, key, state, action, params: PopGymParams):
        p = jnp.sum(jnp.where(jnp.arange(self.num_bandits) == action, state.probs, 0.0))
        paid = jax.random.uniform(key) < p
        scale = 1.0 / params.max_steps_in_episode
        reward = jnp.where(paid, scale, -scale).astype(jnp.float32)
        new = BanditState(state.time + 1, state.probs)
        return one_hot(paid.astype(jnp.int32), 2), new, reward, jnp.bool_(False), {}

    def action_space(self, params=None):
        return spaces.Discrete(self.num_bandits)

    def observation_space(self, params=None):
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)
