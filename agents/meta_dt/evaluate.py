"""Rolling Meta-DT / Prompt-DT out in held-out (or training) tasks.

One rollout runs ``horizon`` steps in every env with a fixed prompt per env. At step t the model sees
the last K steps (``agents.dt.train.context_write``, as in DT evaluation); for Meta-DT, z_t is encoded by
the world model from the agent's own last k transitions of this episode (empty at t = 0), exactly as
dataset steps were annotated in training.

* Meta-DT (:func:`make_meta_evaluate`): episode 1 acts from z alone (empty prompt) -> the *zero-shot*
  return; the world model's errors on that episode pick its highest-error window as the prompt of
  episode 2 in the same task -> the *few-shot* return.
* Prompt-DT (:func:`make_prompt_evaluate`): one episode with a prompt taken from the task's dataset
  (:func:`dataset_prompts`: a random window of its best episode).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.dt.train import DTData, context_init, context_write, returns_to_go, window_write
from ssmrl.agents.meta_dt.prompt import Prompt, best_window, empty_prompt, gather_prompt
from ssmrl.agents.meta_dt.train import MetaDTParts
from ssmrl.agents.meta_dt.world_model import WorldModelParts, transition_features, world_model_data


class Rollout(NamedTuple):
    returns: jax.Array  # [E]
    states: jax.Array  # [E, T, obs] normalised
    actions: jax.Array  # [E, T, act]
    rewards: jax.Array  # [E, T] unscaled
    next_states: jax.Array  # [E, T, obs] normalised


def make_rollout(parts: MetaDTParts, world_model: WorldModelParts | None, env: Any, horizon: int,
                 reward_scale: float) -> Callable[..., Rollout]:
    """``rollout(params, wm_params, env_params [E], targets [E], prompt [E], prompt_mask [E], state_mean,
    state_std, key, task_vectors=None) -> Rollout``; ``world_model`` None for Prompt-DT (``wm_params`` then
    unused). ``task_vectors [E, T, Z]``, if given, replace the encoded z_t (diagnostics: does the DT use z?)."""
    model, dt = parts.model, parts.dt_config
    space = env.action_space(env.default_params)
    obs_dim = int(np.prod(env.observation_space(env.default_params).shape))
    act_dim = int(np.prod(space.shape))
    k_ctx = world_model.config.context_len if world_model else 1
    dim = 2 * obs_dim + act_dim + 1

    def rollout(params, wm_params, env_params, targets, prompt, prompt_mask, state_mean, state_std, key,
                task_vectors=None):
        e = targets.shape[0]
        k_reset, key = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_reset, e), env_params)

        def body(carry, t):
            env_state, obs, rtg, ctx, z_window, history, valid, key = carry
            key, k_env = jax.random.split(key)
            state = (obs.reshape(e, -1) - state_mean) / state_std
            ctx, pos = context_write(ctx, t, rtg / dt.rtg_scale, state)
            task = None
            if world_model is not None:
                z = world_model.model.apply(wm_params, history, valid, method="encode") if task_vectors is None \
                    else task_vectors[:, t]
                z_window = task = window_write(z_window, t, z)
            pred = model.apply(params, ctx.rtg, ctx.states, ctx.actions, ctx.timesteps, task, prompt, prompt_mask)
            action = pred[:, pos]
            ctx = ctx._replace(actions=ctx.actions.at[:, pos].set(action))
            obs, env_state, reward, _, _, info = jax.vmap(env.step)(jax.random.split(k_env, e), env_state,
                                                                    action.reshape((e,) + space.shape), env_params)
            next_state = (info["final_observation"].reshape(e, -1) - state_mean) / state_std
            transition = transition_features(state, action, reward / reward_scale, next_state)
            history = jnp.roll(history, -1, axis=1).at[:, -1].set(transition)
            valid = jnp.roll(valid, -1, axis=1).at[:, -1].set(True)
            out = (state, action, reward, next_state)
            return (env_state, obs, rtg - reward, ctx, z_window, history, valid, key), out

        z_dim = model.task_dim or 1
        init = (env_state, obs, targets, context_init(e, dt.context_len, obs_dim, act_dim),
                jnp.zeros((e, dt.context_len, z_dim)), jnp.zeros((e, k_ctx, dim)), jnp.zeros((e, k_ctx), bool), key)
        _, (states, actions, rewards, next_states) = jax.lax.scan(body, init, jnp.arange(horizon))
        batch_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        return Rollout(rewards.sum(0), batch_major(states), batch_major(actions), batch_major(rewards),
                       batch_major(next_states))

    return rollout


def per_episode(task_params: Any, targets: jax.Array, num_episodes: int) -> tuple[Any, jax.Array]:
    """Task params and targets ``[N]`` repeated for ``num_episodes`` envs per task: ``[N * E]``."""
    repeat = lambda x: jnp.repeat(jnp.asarray(x), num_episodes, axis=0)  # noqa: E731
    return jax.tree.map(repeat, task_params), repeat(jnp.asarray(targets, jnp.float32))


def make_meta_evaluate(parts: MetaDTParts, world_model: WorldModelParts, env: Any, horizon: int,
                       reward_scale: float, num_episodes: int) -> Callable[..., dict]:
    """``evaluate(params, wm_params, task_params [N], targets [N], state_mean, state_std, key)`` ->
    ``{"zero_shot": [N, E], "few_shot": [N, E], "prompt_start": [N, E]}`` returns (and prompt starts)."""
    rollout = make_rollout(parts, world_model, env, horizon, reward_scale)
    kp, rtg_scale = parts.config.prompt_len, parts.dt_config.rtg_scale

    def evaluate(params, wm_params, task_params, targets, state_mean, state_std, key):
        n = jax.tree.leaves(task_params)[0].shape[0]
        env_params, rtg0 = per_episode(task_params, targets, num_episodes)
        e = rtg0.shape[0]
        k_explore, k_act = jax.random.split(key)
        obs_dim, act_dim = state_mean.shape[0], parts.model.act_dim
        first = rollout(params, wm_params, env_params, rtg0, empty_prompt(e, kp, obs_dim, act_dim),
                        jnp.zeros((e,), bool), state_mean, state_std, k_explore)
        seen = world_model_data(first.states, first.actions, first.rewards / reward_scale, first.next_states)
        _, errors = world_model.annotate(wm_params, seen)
        start = best_window(errors, kp)
        prompt = gather_prompt(returns_to_go(first.rewards) / rtg_scale, first.states, first.actions,
                               jnp.arange(e), start, kp)
        second = rollout(params, wm_params, env_params, rtg0, prompt, jnp.ones((e,), bool), state_mean, state_std,
                         k_act)
        split = lambda x: x.reshape(n, num_episodes)  # noqa: E731
        return {"zero_shot": split(first.returns), "few_shot": split(second.returns), "prompt_start": split(start)}

    return jax.jit(evaluate)


def dataset_prompts(data: DTData, episodes_per_task: int, num_episodes: int, prompt_len: int,
                    key: jax.Array) -> Prompt:
    """Prompt-DT's prompts for ``num_episodes`` envs per task: random windows of each task's best episode
    in ``data`` (episodes stacked task by task): ``[N * num_episodes, Kp, ...]``."""
    n, horizon = data.rtg.shape
    best = jnp.argmax(data.rtg[:, 0].reshape(n // episodes_per_task, episodes_per_task), axis=1)
    source = jnp.repeat(jnp.arange(n // episodes_per_task) * episodes_per_task + best, num_episodes)
    start = jax.random.randint(key, source.shape, 0, horizon - prompt_len + 1)
    return gather_prompt(data.rtg, data.states, data.actions, source, start, prompt_len)


def make_prompt_evaluate(parts: MetaDTParts, env: Any, horizon: int, num_episodes: int) -> Callable[..., dict]:
    """``evaluate(params, task_params [N], targets [N], prompts [N * E], state_mean, state_std, key)`` ->
    ``{"prompted": [N, E]}`` returns."""
    rollout = make_rollout(parts, None, env, horizon, 1.0)

    def evaluate(params, task_params, targets, prompts, state_mean, state_std, key):
        n = jax.tree.leaves(task_params)[0].shape[0]
        env_params, rtg0 = per_episode(task_params, targets, num_episodes)
        out = rollout(params, None, env_params, rtg0, prompts, jnp.ones(rtg0.shape, bool), state_mean, state_std,
                      key)
        return {"prompted": out.returns.reshape(n, num_episodes)}

    return jax.jit(evaluate)
