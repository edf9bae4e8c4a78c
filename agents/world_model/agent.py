"""The world-model agent as pure functions over an explicit state pytree.

``build(config) -> Parts``; ``init(parts, key) -> AgentState``; ``prefill(parts)(state)`` (random
policy); ``make_chunk(parts)(state) -> (state, metrics [updates])``, each update (``agent_update``) collecting
``train_every`` env steps with the policy then doing one world-model and one actor-critic update
(``train_step``: ``world_model_update``, ``imagination_starts``, ``imagination``, ``actor_critic_update``);
``make_evaluate(parts, env)(params, key)``; ``open_loop(...)`` for the imagined-vs-real video.

The env is any registered one with discrete actions (``config.env_name``). The Atari env lives in
C++: ``AgentState.env_state`` holds a pointer valid in this process only, so a
restored checkpoint gets a fresh env (see ``fresh_env``); everything else, the replay included,
is restored exactly.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.behavior import (
    Actor,
    Critic,
    actor_critic_losses,
    actor_policy,
    imagine,
    make_actor_critic,
)
from ssmrl.agents.world_model.config import WorldModelConfig
from ssmrl.agents.world_model.networks import check_observation_shape, postprocess
from ssmrl.agents.world_model.world_model import WorldModel, make_world_model, state, world_model_loss
from ssmrl.ssm.precision import matmul_precision


@struct.dataclass
class AgentState:
    params: dict          # {"wm", "actor", "critic", "slow_critic"}
    opt: dict             # optimiser states {"wm", "actor", "critic"}
    return_scale: jax.Array
    replay: rb.Replay
    env_state: Any
    obs: jax.Array        # [E, *obs_shape]: the current observation of each env
    first: jax.Array      # bool [E]: the current frame starts an episode
    carry: dict           # the policy's sequence carry into the current frame
    ep_return: jax.Array  # f32 [E]: return so far of the running episodes
    key: jax.Array
    env_steps: jax.Array  # int32: steps taken per env
    updates: jax.Array    # int32


@dataclasses.dataclass(frozen=True)
class Parts:
    config: WorldModelConfig
    num_actions: int
    obs_shape: tuple[int, ...]
    obs_dtype: Any
    wm: WorldModel
    actor: Actor
    critic: Critic
    wm_tx: optax.GradientTransformation
    actor_tx: optax.GradientTransformation
    critic_tx: optax.GradientTransformation
    env: Any = None
    env_params: Any = None


def _adam(lr: float, clip: float, eps: float = 1e-5) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr, eps=eps))


def make_env(config: WorldModelConfig, num_envs: int):
    """``(env, env_params)`` for ``config.env_name`` to be vmapped over ``num_envs`` copies.

    gymnax envs are built once and vmapped freely; an env that steps all its copies in one object
    (Atari's vector ALE: it has a ``num_envs`` attribute) is rebuilt with that many copies."""
    from ssmrl import envs

    options = dict(config.env_options)
    env, env_params = envs.make(config.env_name, **options)
    if getattr(env, "num_envs", num_envs) != num_envs:
        env, env_params = envs.make(config.env_name, **options, num_envs=num_envs)
    return env, env_params


def observation_spec(env, env_params) -> tuple[tuple[int, ...], Any, int]:
    """``(obs_shape, obs_dtype, num_actions)`` of an env; raises ``ValueError`` unless its actions are
    discrete and its observations of a rank the networks take."""
    action_space = env.action_space(env_params)
    if not hasattr(action_space, "n"):
        raise ValueError(f"world-model agents need discrete actions; the env has {action_space}")
    obs_space = env.observation_space(env_params)
    check_observation_shape(tuple(obs_space.shape))
    return tuple(obs_space.shape), jnp.dtype(obs_space.dtype), int(action_space.n)


def build(config: WorldModelConfig, env=None, env_params=None, num_actions: int | None = None,
          obs_shape: tuple[int, ...] = (64, 64, 3), obs_dtype=jnp.uint8) -> Parts:
    """Networks and optimisers; the env ``config.env_name`` is made here unless one is given
    (``env=None, num_actions=n`` builds env-less parts for tests and benchmarks with observations of
    ``obs_shape`` and ``obs_dtype``)."""
    if env is None and num_actions is None:
        env, env_params = make_env(config, config.num_envs)
    if env is not None:
        obs_shape, obs_dtype, num_actions = observation_spec(env, env_params)
    actor, critic = make_actor_critic(config, num_actions)
    return Parts(config=config, num_actions=num_actions, obs_shape=tuple(obs_shape), obs_dtype=jnp.dtype(obs_dtype),
                 wm=make_world_model(config, num_actions, obs_shape), actor=actor,
                 critic=critic, wm_tx=_adam(config.wm_lr, config.wm_grad_clip, config.wm_eps),
                 actor_tx=_adam(config.actor_lr, config.ac_grad_clip),
                 critic_tx=_adam(config.critic_lr, config.ac_grad_clip), env=env, env_params=env_params)


def init_params(parts: Parts, key: jax.Array) -> dict:
    """Jitted: initialising eagerly ran op by op and took ~45 s on 2 CPU cores at the small size."""
    c = parts.config
    T, B = 2, 1

    def initialise(key):
        k_wm, k_actor, k_critic = jax.random.split(key, 3)
        obs = jnp.zeros((T, B, *parts.obs_shape), parts.obs_dtype)
        wm_params = parts.wm.init(k_wm, parts.wm.initialize_carry(B), obs,
                                  jnp.zeros((T, B), jnp.int32), jnp.zeros((T, B), bool), jax.random.split(k_wm, T))
        s = jnp.zeros((1, c.latent_size + c.hidden))
        critic_params = parts.critic.init(k_critic, s)
        return {"wm": wm_params, "actor": parts.actor.init(k_actor, s), "critic": critic_params,
                "slow_critic": critic_params}

    return jax.jit(initialise)(key)


def agent_keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(params, env reset, the state's own)`` keys of :func:`init`: whoever needs a fresh agent's parameters
    without an env takes ``init_params(parts, agent_keys(key)[0])``."""
    return tuple(jax.random.split(key, 3))


def init(parts: Parts, key: jax.Array) -> AgentState:
    """A fresh agent (parameters, optimisers, empty replay) and freshly reset envs."""
    c = parts.config
    k_params, k_env, key = agent_keys(key)
    params = init_params(parts, k_params)
    opt = {"wm": parts.wm_tx.init(params["wm"]), "actor": parts.actor_tx.init(params["actor"]),
           "critic": parts.critic_tx.init(params["critic"])}
    state = AgentState(
        params=params, opt=opt, return_scale=jnp.zeros((), jnp.float32),
        replay=rb.init_replay(c.capacity, c.num_envs, parts.obs_shape, parts.obs_dtype), env_state=None,
        obs=jnp.zeros((c.num_envs, *parts.obs_shape), parts.obs_dtype), first=jnp.ones((c.num_envs,), bool),
        carry=parts.wm.initialize_carry(c.num_envs), ep_return=jnp.zeros((c.num_envs,), jnp.float32),
        key=key, env_steps=jnp.zeros((), jnp.int32), updates=jnp.zeros((), jnp.int32))
    return fresh_env(parts, state, k_env)


def fresh_env(parts: Parts, state: AgentState, key: jax.Array) -> AgentState:
    """Reset every env and the policy's carry (a new episode everywhere); the rest is kept."""
    E = parts.config.num_envs
    obs, env_state = jax.jit(jax.vmap(parts.env.reset, in_axes=(0, None)))(jax.random.split(key, E),
                                                                          parts.env_params)
    return state.replace(env_state=env_state, obs=obs, first=jnp.ones((E,), bool),
                         carry=parts.wm.initialize_carry(E), ep_return=jnp.zeros((E,), jnp.float32))


def at_precision(fn: Callable) -> Callable:
    """``fn(parts, ...)`` traced with every dense layer's matmuls at ``parts.config.precision`` (ssm/precision.py):
    acting, training and the open-loop predictions all run the networks as trained."""

    @functools.wraps(fn)
    def run(parts: Parts, *args, **kwargs):
        with matmul_precision(parts.config.precision):
            return fn(parts, *args, **kwargs)

    return run


# ----------------------------------------------------------------------------- acting

@at_precision
def policy_step(parts: Parts, params: dict, carry: dict, obs: jax.Array, first: jax.Array, key: jax.Array,
                deterministic: bool = False):
    """Posterior of the current frame, an action (sampled, or the actor's likeliest when ``deterministic``),
    then advance the carry: ``(carry, action [E])``. The latent is sampled either way."""
    k_z, k_a = jax.random.split(key)
    z, _, h_prev = parts.wm.apply(params["wm"], carry, obs, first, k_z, method="posterior")
    logits = parts.actor.apply(params["actor"], jnp.concatenate([z, h_prev], -1))
    action = jnp.argmax(logits, -1) if deterministic else jax.random.categorical(k_a, logits)
    carry, _ = parts.wm.apply(params["wm"], carry, z, action, first, method="imagine_step")
    return carry, action


def env_step(env, env_params, env_state, action: jax.Array, key: jax.Array):
    """Step every copy of ``env`` with ``action [E]``: the gymnax step's outputs, each with a leading ``[E]``."""
    keys = jax.random.split(key, action.shape[0])
    return jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, env_state, action, env_params)


def episode_ends(terminated: jax.Array, info: dict) -> jax.Array:
    """The training-only termination signal: a lost life where the env reports one (Atari's
    ``info["life_loss"]``, game over included), else the env's own termination (not truncation)."""
    return jnp.logical_or(terminated, info.get("life_loss", False))


def collect(parts: Parts, state: AgentState, steps: int, random_policy: bool) -> tuple[AgentState, jax.Array]:
    """``steps`` env steps into the replay; returns the state and the returns of the episodes that
    ended ``[steps, E]`` (NaN where none ended)."""

    def body(state: AgentState, _):
        key, k_act, k_env = jax.random.split(state.key, 3)
        if random_policy:
            action = jax.random.randint(k_act, state.first.shape, 0, parts.num_actions)
            carry = state.carry
        else:
            carry, action = policy_step(parts, state.params, state.carry, state.obs, state.first, k_act)
        obs, env_state, reward, terminated, truncated, info = env_step(
            parts.env, parts.env_params, state.env_state, action, k_env)
        replay = rb.add(state.replay, state.obs, action, reward, episode_ends(terminated, info), state.first)
        done = jnp.logical_or(terminated, truncated)
        ep_return = state.ep_return + reward
        state = state.replace(replay=replay, env_state=env_state, obs=obs, first=done, carry=carry,
                              ep_return=jnp.where(done, 0.0, ep_return), key=key, env_steps=state.env_steps + 1)
        return state, jnp.where(done, ep_return, jnp.nan)

    return jax.lax.scan(body, state, None, length=steps)


# ----------------------------------------------------------------------------- learning

@at_precision
def world_model_update(parts: Parts, wm_params, wm_opt, batch: dict, key: jax.Array) -> tuple[Any, Any, dict]:
    """One gradient step of the world model on a replay batch (``batch[name] [T, B, ...]``):
    ``(wm_params, wm_opt, metrics)``."""
    grad_fn = jax.value_and_grad(world_model_loss, has_aux=True)
    (_, (_, metrics)), grads = grad_fn(wm_params, parts.wm, parts.config, batch, key)
    updates, wm_opt = parts.wm_tx.update(grads, wm_opt, wm_params)
    return optax.apply_updates(wm_params, updates), wm_opt, metrics


@at_precision
def imagination_starts(parts: Parts, wm_params, context: dict, k_obs: jax.Array, k_start: jax.Array
                       ) -> tuple[dict, jax.Array]:
    """Where imagination starts: the sequence carry after the first ``imag_context - 1`` frames of each context
    window (``context[name] [imag_context, N, ...]``) and a posterior sample ``z0 [N, L]`` of its last frame."""
    c = parts.config
    n_ctx = c.imag_context - 1
    carry, _ = parts.wm.apply(wm_params, parts.wm.initialize_carry(c.imag_batch), context["obs"][:-1],
                              context["action"][:-1], context["first"][:-1], jax.random.split(k_obs, n_ctx),
                              method="observe")
    z0, _, _ = parts.wm.apply(wm_params, carry, context["obs"][-1], context["first"][-1], k_start, method="posterior")
    return carry, z0


@at_precision
def imagination(parts: Parts, wm_params, actor_params, carry: dict, z0: jax.Array, reset0: jax.Array,
                key: jax.Array) -> dict:
    """The actor rolled ``config.horizon`` steps in the model from :func:`imagination_starts`' ``(carry, z0)``
    (``reset0 [N]``: the start frame begins an episode): :func:`imagine`'s trajectory."""
    return imagine(parts.wm, wm_params, actor_policy(parts.actor, actor_params), carry, z0, reset0,
                   parts.config.horizon, key)


@at_precision
def actor_critic_update(parts: Parts, params: dict, opt: dict, traj: dict, return_scale: jax.Array
                        ) -> tuple[dict, dict, jax.Array, dict]:
    """One step of the actor and the critic on an imagined trajectory (:func:`imagine`'s), and the slow critic's
    EMA: ``(params, opt, return_scale, metrics)`` with ``params`` / ``opt`` the ``actor``, ``critic`` and
    ``slow_critic`` entries (``opt``: the first two) updated, other entries kept."""
    c = parts.config

    def ac_loss(ac_params):
        a_loss, c_loss, scale, metrics = actor_critic_losses(
            ac_params["actor"], ac_params["critic"], params["slow_critic"], parts.actor, parts.critic, traj,
            return_scale, c)
        return a_loss + c_loss, (scale, metrics)

    ac_params = {"actor": params["actor"], "critic": params["critic"]}
    (_, (return_scale, metrics)), grads = jax.value_and_grad(ac_loss, has_aux=True)(ac_params)
    a_up, actor_opt = parts.actor_tx.update(grads["actor"], opt["actor"], params["actor"])
    c_up, critic_opt = parts.critic_tx.update(grads["critic"], opt["critic"], params["critic"])
    critic_params = optax.apply_updates(params["critic"], c_up)
    slow = optax.incremental_update(critic_params, params["slow_critic"], c.slow_critic_rate)
    params = {**params, "actor": optax.apply_updates(params["actor"], a_up), "critic": critic_params,
              "slow_critic": slow}
    return params, {**opt, "actor": actor_opt, "critic": critic_opt}, return_scale, metrics


@at_precision
def train_step(parts: Parts, state: AgentState) -> tuple[AgentState, dict]:
    """One world-model update on a replay batch, then one actor-critic update in imagination from fresh context
    windows."""
    c = parts.config
    key, k_batch, k_wm, k_ctx, k_obs, k_start, k_imag = jax.random.split(state.key, 7)
    replay, batch = rb.sample(state.replay, k_batch, c.batch_size, c.batch_length, c.sampler, c.dfs_temperature)
    wm_params, wm_opt, wm_metrics = world_model_update(parts, state.params["wm"], state.opt["wm"], batch, k_wm)
    replay, context = rb.sample(replay, k_ctx, c.imag_batch, c.imag_context, c.sampler, c.dfs_temperature,
                                imagination=True)
    carry, z0 = imagination_starts(parts, wm_params, context, k_obs, k_start)
    traj = imagination(parts, wm_params, state.params["actor"], carry, z0, context["first"][-1], k_imag)
    params, opt, return_scale, ac_metrics = actor_critic_update(
        parts, {**state.params, "wm": wm_params}, {**state.opt, "wm": wm_opt}, traj, state.return_scale)
    state = state.replace(params=params, opt=opt, return_scale=return_scale, replay=replay, key=key,
                          updates=state.updates + 1)
    return state, {**wm_metrics, **ac_metrics}


def make_prefill(parts: Parts) -> Callable[[AgentState], AgentState]:
    steps = parts.config.prefill_chunk_steps
    return lambda state: collect(parts, state, steps, random_policy=True)


def agent_update(parts: Parts, state: AgentState) -> tuple[AgentState, dict]:
    """Collect ``train_every`` steps with the policy, then one world-model and one actor-critic update
    (:func:`train_step`): one agent step of a run, not jitted (:func:`make_update` jits it)."""
    state, returns = collect(parts, state, parts.config.train_every, random_policy=False)
    state, metrics = train_step(parts, state)
    metrics["episode_return"] = jnp.nanmean(returns)
    return state, metrics


def make_update(parts: Parts) -> Callable[[AgentState], tuple[AgentState, dict]]:
    """``update(state) -> (state, metrics)``: :func:`agent_update` jitted with the state donated, so the replay
    buffer (the whole run's frames) is updated in place instead of copied on every call."""
    return jax.jit(functools.partial(agent_update, parts), donate_argnums=0)


def make_chunk(parts: Parts, on_update: Callable[[jax.Array], None] | None = None
               ) -> Callable[[AgentState], tuple[AgentState, dict]]:
    """``chunk(state) -> (state, metrics)``: ``updates_per_chunk`` calls of :func:`make_update`;
    ``metrics[name] [updates]``, ``episode_return`` NaN where no episode ended. ``on_update(episode_return)``
    runs after every update (the progress bar).

    A host loop rather than ``lax.scan``: inside XLA's CPU while-loop the replay buffer was copied
    every iteration (a 2-update scanned chunk took 85 s where two donated calls take 5 s).
    """
    update = make_update(parts)

    def chunk(state: AgentState) -> tuple[AgentState, dict]:
        history = []
        for _ in range(parts.config.updates_per_chunk):
            state, metrics = update(state)
            history.append(metrics)
            if on_update is not None:
                on_update(metrics["episode_return"])
        return state, jax.tree.map(lambda *x: jnp.stack(x), *history)

    return chunk


# ----------------------------------------------------------------------------- evaluation

def make_evaluate(parts: Parts, env, env_params, num_envs: int, steps: int, deterministic: bool = False):
    """``evaluate(params, key) -> returns [steps, num_envs]`` of the episodes the policy finished in
    ``steps`` steps of an env of its own (NaN elsewhere); ``deterministic`` acts with the actor's likeliest
    action instead of sampling it."""

    def evaluate(params: dict, key: jax.Array) -> jax.Array:
        k_reset, key = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), env_params)

        def body(c, k):
            carry, obs, first, env_state, ep_return = c
            k_act, k_env = jax.random.split(k)
            carry, action = policy_step(parts, params, carry, obs, first, k_act, deterministic)
            obs, env_state, reward, terminated, truncated, _ = env_step(env, env_params, env_state, action, k_env)
            done = jnp.logical_or(terminated, truncated)
            ep_return = ep_return + reward
            return (carry, obs, done, env_state, jnp.where(done, 0.0, ep_return)), jnp.where(done, ep_return,
                                                                                             jnp.nan)

        init_c = (parts.wm.initialize_carry(num_envs), obs, jnp.ones((num_envs,), bool), env_state,
                  jnp.zeros((num_envs,), jnp.float32))
        _, returns = jax.lax.scan(body, init_c, jax.random.split(key, steps))
        return returns

    return evaluate


@at_precision
def open_loop_predictions(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, context: int,
                     key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Observe ``context`` frames, then imagine the rest open-loop from the recorded actions.

    ``obs [T, B, *obs_shape]``, ``action, first [T, B]`` -> ``(frames [T, B, *obs_shape], reward logits
    [T, B, bins])``: frames in ``preprocess``'s space (reconstructions of the observed frames, then frames
    decoded from prior samples) and the reward head's prediction for each action ``a_t`` (with
    ``reward_input="next_state"`` read with the latent after ``a_t``: the next frame's posterior while observing,
    a prior sample from the last observed step on).
    """
    T, B = action.shape
    chex.assert_shape(obs, (T, B, *parts.obs_shape))
    wm = parts.wm
    k_obs, k_imag = jax.random.split(key)
    carry, out = wm.apply(wm_params, wm.initialize_carry(B), obs[:context], action[:context], first[:context],
                          jax.random.split(k_obs, context), method="observe")
    recon = wm.apply(wm_params, out["z"], out["h_prev"], method="decode")

    def sample_prior(k, h):
        z = jax.random.categorical(k, wm.apply(wm_params, h, method="prior"), axis=-1)
        return jax.nn.one_hot(z, parts.config.latent_classes).reshape(B, -1)

    def body(c, inputs):
        carry, h_prev = c
        a_t, k = inputs
        z = sample_prior(k, h_prev)
        frame = wm.apply(wm_params, z, h_prev, method="decode")
        carry, h = wm.apply(wm_params, carry, z, a_t, jnp.zeros((B,), bool), method="imagine_step")
        return (carry, h), (frame, z, h_prev, h)

    (_, h_last), (imagined, zs, h_prevs, hs) = jax.lax.scan(
        body, (carry, carry["h"]), (action[context:], jax.random.split(k_imag, T - context)))
    # a_t's latent after it (reward_input="next_state"): the next posterior, then the prior samples, then one more
    z_after = sample_prior(jax.random.fold_in(k_imag, T), h_last)
    states = jnp.concatenate([state(out), jnp.concatenate([zs, h_prevs], -1)], 0)
    z_next = jnp.concatenate([out["z"][1:], zs, z_after[None]], 0)
    reward, _ = wm.apply(wm_params, states, action, jnp.concatenate([out["h"], hs], 0), z_next, method="heads")
    return jnp.concatenate([recon, imagined], 0), reward


def open_loop(parts: Parts, wm_params, obs: jax.Array, action: jax.Array, first: jax.Array, context: int,
              key: jax.Array) -> jax.Array:
    """:func:`open_loop_predictions`' frames in the env's units and dtype: the imagined-vs-real video."""
    frames, _ = open_loop_predictions(parts, wm_params, obs, action, first, context, key)
    return postprocess(frames, parts.obs_dtype)
