"""Evaluate a PPO policy: the return of one full episode in each of ``num_envs`` fresh envs.

Environments made of several trials (meta-RL: ``env.trials`` and ``info["trial"]``) report the return
of every trial separately: the in-context learning curve.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from ssmrl.agents.ppo.train import PPOParts, Rollout, rollout_step


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
            rollout, total, finished, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            after, step = rollout_step(network, actions, params, env, env_params, rollout, k_act, k_env, deterministic)
            trial = step.info["trial"] if "trial" in step.info else jnp.zeros((num_envs,), jnp.int32)
            total = total + jnp.where(finished, 0.0, step.reward)[:, None] * jax.nn.one_hot(trial, trials)
            seen = (rollout.obs, finished) if record else None
            return (after, total, finished | step.done, key), seen

        init = (Rollout.start(network, actions, env_state, obs), jnp.zeros((num_envs, trials)),
                jnp.zeros((num_envs,), bool), key)
        (_, total, _, _), seen = jax.lax.scan(body, init, None, num_steps)
        return (total, *seen) if record else total

    return evaluate
