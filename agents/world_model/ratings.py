"""Does the world model rate policies as the env does?

Each policy of a small set (every constant action, and the agent's own actor) runs ``horizon`` steps from
the same fresh episodes twice: in the model, imagined from the posterior of each episode's first frame, and
in the env. Both sides count the same two things per episode: the reward collected before the episode ends
or the horizon is reached, and the steps taken; an imagined step counts with the model's probability that
the episode still runs (the weight the actor-critic gives it). An agent whose model rates a policy far above
what the env pays for it can settle on that policy: the ratings show which policies the model tells apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssmrl.agents.world_model.agent import Parts, at_precision, env_step, episode_ends, policy_step
from ssmrl.agents.world_model.behavior import Policy, actor_policy, imagine


def policy_names(num_actions: int) -> list[str]:
    """The rated policies, in the order of :func:`ratings`' rows: ``action 0`` .. ``action A-1``, ``actor``."""
    return [f"action {a}" for a in range(num_actions)] + ["actor"]


@at_precision
def imagined_ratings(parts: Parts, params: dict, first_obs: jax.Array, horizon: int, key: jax.Array
                     ) -> tuple[jax.Array, jax.Array]:
    """``first_obs [N, *obs_shape]``: episodes' first frames -> ``(returns, steps)``, each ``[P, N]`` for the
    policies of :func:`policy_names` imagined ``horizon`` steps from those frames."""
    wm = parts.wm
    N = first_obs.shape[0]
    first = jnp.ones((N,), bool)
    k_start, k_imag = jax.random.split(key)
    carry = wm.initialize_carry(N)
    z0, _, _ = wm.apply(params["wm"], carry, first_obs, first, k_start, method="posterior")

    def constant(action: int) -> Policy:
        return lambda key, s: jnp.full(s.shape[:-1], action, jnp.int32)

    policies = [constant(a) for a in range(parts.num_actions)] + [actor_policy(parts.actor, params["actor"])]
    returns, steps = [], []
    for policy in policies:
        traj = imagine(wm, params["wm"], policy, carry, z0, first, horizon, k_imag)
        # step t is taken if the episode ran on after every earlier action
        alive = jnp.cumprod(jnp.concatenate([jnp.ones_like(traj["cont"][:1]), traj["cont"][:-1]], 0), 0)
        returns.append(jnp.sum(alive * traj["reward"], 0))
        steps.append(jnp.sum(alive, 0))
    return jnp.stack(returns), jnp.stack(steps)


def env_ratings(parts: Parts, params: dict, env, env_params, episodes: int, horizon: int, key: jax.Array
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The same policies in ``E = episodes`` copies of ``env`` (vmapped; an env stepping its copies together, as
    Atari's, must have been made with ``E``): ``(first_obs [E, *obs_shape], returns [P, E],
    steps [P, E])``. Every policy starts from the same ``E`` resets; an episode ends where the agent's
    training signal ends it (:func:`~ssmrl.agents.world_model.agent.episode_ends`: termination or a lost
    life) or at truncation."""
    k_reset, k_run = jax.random.split(key)
    E = episodes
    first_obs, state0 = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, E), env_params)

    def run(action: int | None) -> tuple[jax.Array, jax.Array]:
        """``action``: that constant action, or None for the actor (acting as in training: sampled)."""

        def body(c, k):
            carry, obs, first, env_state, running, ret, steps = c
            k_act, k_env = jax.random.split(k)
            if action is None:
                carry, act = policy_step(parts, params, carry, obs, first, k_act)
            else:
                act = jnp.full((E,), action, jnp.int32)
            obs, env_state, reward, terminated, truncated, info = env_step(env, env_params, env_state, act, k_env)
            ret, steps = ret + running * reward, steps + running
            running = running * (1.0 - jnp.logical_or(episode_ends(terminated, info), truncated))
            return (carry, obs, jnp.zeros_like(first), env_state, running, ret, steps), None

        zeros = jnp.zeros((E,), jnp.float32)
        init = (parts.wm.initialize_carry(E), first_obs, jnp.ones((E,), bool), state0, jnp.ones((E,), jnp.float32),
                zeros, zeros)
        (*_, ret, steps), _ = jax.lax.scan(body, init, jax.random.split(k_run, horizon))
        return ret, steps

    rows = [run(a) for a in range(parts.num_actions)] + [run(None)]
    return first_obs, jnp.stack([r for r, _ in rows]), jnp.stack([s for _, s in rows])


def ratings(parts: Parts, params: dict, env, env_params, episodes: int, horizon: int, key: jax.Array
            ) -> dict[str, dict]:
    """``{policy: {model_return, env_return, model_steps, env_steps}}`` (means over ``episodes``) for the
    policies of :func:`policy_names`, each run ``horizon`` steps from the same fresh episodes in ``env`` (made
    with ``episodes`` copies) and, from those episodes' first frames, in the model."""
    k_env, k_model = jax.random.split(key)

    @jax.jit
    def both(params, k_env, k_model):
        first_obs, env_returns, env_steps = env_ratings(parts, params, env, env_params, episodes, horizon, k_env)
        model_returns, model_steps = imagined_ratings(parts, params, first_obs, horizon, k_model)
        return model_returns.mean(1), env_returns.mean(1), model_steps.mean(1), env_steps.mean(1)

    columns = ("model_return", "env_return", "model_steps", "env_steps")
    values = [list(map(float, v)) for v in both(params, k_env, k_model)]
    return {name: {col: values[c][p] for c, col in enumerate(columns)}
            for p, name in enumerate(policy_names(parts.num_actions))}
