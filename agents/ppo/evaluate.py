"""Evaluate a PPO policy: the return of one full episode in each of ``num_envs`` fresh envs.

Environments made of several trials (meta-RL: ``env.trials`` and ``info["trial"]``) report the return
of every trial separately: the in-context learning curve.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from ssmrl.agents.ppo.network import policy_distribution
from ssmrl.agents.ppo.train import PPOParts, augment


def make_evaluate(parts: PPOParts, num_envs: int, deterministic: bool = False,
                  num_steps: int | None = None, record: bool = False) -> Callable[[dict, jax.Array], Any]:
    """``evaluate(params, key) -> returns [num_envs, trials]`` of each env's first episode.

    Runs ``num_steps`` steps (default: the env's ``max_steps_in_episode``, so every episode ends).
    ``deterministic`` acts with the mode of the policy instead of sampling it. ``record`` returns
    ``(returns, observations [num_steps, num_envs, ...], first_episode_over [num_steps, num_envs])``
    instead, for episode videos.
    """
    env, env_params, network, actions = parts.env, parts.env_params, parts.network, parts.actions
    num_steps = num_steps or int(env_params.max_steps_in_episode)
    trials = int(getattr(env, "trials", 1))

    def evaluate(params, key):
        k_reset, key = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), env_params)

        def body(carry, _):
            state, obs, first, prev_action, memory, total, finished, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            memory, (policy, _) = network.apply(params, memory, augment(obs, prev_action, first), first,
                                                method="step")
            pi = policy_distribution(policy, params, actions.continuous)
            action = pi.mode() if deterministic else pi.sample(seed=k_act)
            obs, state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, num_envs), state, actions.to_env(action), env_params)
            done = jnp.logical_or(terminated, truncated)
            trial = info["trial"] if "trial" in info else jnp.zeros((num_envs,), jnp.int32)
            total = total + jnp.where(finished, 0.0, reward)[:, None] * jax.nn.one_hot(trial, trials)
            prev_action = jnp.where(done[:, None], 0.0, actions.encode(action))
            seen = (carry[1], finished) if record else None
            return (state, obs, done, prev_action, memory, total, finished | done, key), seen

        init = (env_state, obs, jnp.ones((num_envs,), bool), jnp.zeros((num_envs, actions.dim)),
                network.initialize_carry(num_envs), jnp.zeros((num_envs, trials)), jnp.zeros((num_envs,), bool), key)
        (_, _, _, _, _, total, _, _), seen = jax.lax.scan(body, init, None, num_steps)
        return (total, *seen) if record else total

    return evaluate
