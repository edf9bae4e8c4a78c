"""Data collection for offline RL: per-task rollouts of a policy trained on a task-conditioned env.

One PPO agent collects the data of every task. It trains on ``envs.tasks.conditioned.TaskConditioned``
(``conditioned/<name>`` in the env registry), then :func:`make_collect` rolls it out on each task.
Datasets record the raw observations (without the task features) and the action the base env received.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from ssmrl.envs.tasks.conditioned import ConditionedParams, TaskConditioned


def make_collect(parts, num_episodes: int, horizon: int | None = None,
                 deterministic: bool = False) -> Callable[[Any, Any, jax.Array], dict]:
    """``collect(params, tasks, key) -> episodes`` for a PPO agent trained on a ``TaskConditioned`` env.

    ``parts``: ``agents.ppo.train.build(config)``; ``tasks``: base task params with a leading task axis
    [N]. Runs ``num_episodes`` episodes of ``horizon`` steps (default: the time limit) in every task and
    returns arrays ``[N, num_episodes, T, ...]``: ``observations`` / ``next_observations`` (the base
    env's, without the task features), ``actions`` (what the base env received), ``rewards``,
    ``dones``.
    """
    from ssmrl.agents.ppo.train import Rollout, rollout_step

    env: TaskConditioned = parts.env.env if hasattr(parts.env, "env") else parts.env
    network, actions = parts.network, parts.actions
    time_limit = int(env.base.default_params.max_steps_in_episode)
    horizon = horizon or time_limit
    base_dim = env.base_obs_dim

    def collect(params, tasks, key):
        n = jax.tree.leaves(tasks)[0].shape[0]
        e = n * num_episodes
        # Every env draws from a batch of one task: its own.
        per_env = jax.tree.map(lambda x: jnp.repeat(jnp.asarray(x), num_episodes, axis=0)[:, None], tasks)
        env_params = ConditionedParams(tasks=per_env, max_steps_in_episode=time_limit)
        k_reset, key = jax.random.split(key)
        obs, state = jax.vmap(env.reset)(jax.random.split(k_reset, e), env_params)

        def body(carry, _):
            rollout, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            after, step = rollout_step(network, actions, params, env, env_params, rollout, k_act, k_env,
                                       deterministic, env_params_axis=0)
            out = dict(observations=rollout.obs[:, :base_dim], actions=jax.vmap(env.to_base_action)(step.env_action),
                       rewards=step.reward, dones=step.done,
                       next_observations=step.info["final_observation"][:, :base_dim])
            return (after, key), out

        _, out = jax.lax.scan(body, (Rollout.start(network, actions, state, obs), key), None, horizon)
        # [T, N * E, ...] -> [N, E, T, ...]
        return jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1).reshape((n, num_episodes, horizon) + x.shape[2:]), out)

    return collect
