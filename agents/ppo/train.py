"""Recurrent PPO in the PureJaxRL form: ``make_train(config) -> train(key)``, pure and jittable.

One word per concept (Lu et al. 2023's convention): every transition stores ``first`` (its observation
starts a new episode: the memory is reset before it) and ``done`` (the episode ended with this step: GAE
stops bootstrapping); the runner carries ``first`` for the latest observation. Observations are
augmented with the previous action and a first-step flag.
Minibatches are groups of whole environment sequences, re-run from the carry the rollout started
with.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState
from gymnax.environments import spaces

from ssmrl import envs, ssm
from ssmrl.agents.ppo.config import PPOConfig
from ssmrl.agents.ppo.network import ActorCritic, policy_distribution
from ssmrl.envs.wrappers import EpisodeStats


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """How actions look to the network (``dim``) and how they are fed back as inputs."""

    continuous: bool
    dim: int
    shape: tuple[int, ...] = ()
    low: Any = None
    high: Any = None

    @classmethod
    def from_space(cls, space) -> "ActionSpec":
        if isinstance(space, spaces.Discrete):
            return cls(continuous=False, dim=int(space.n))
        if isinstance(space, spaces.Box):
            shape = tuple(space.shape)
            return cls(continuous=True, dim=int(np.prod(shape)), shape=shape,
                       low=np.broadcast_to(np.asarray(space.low, np.float32), shape).reshape(-1),
                       high=np.broadcast_to(np.asarray(space.high, np.float32), shape).reshape(-1))
        raise ValueError(f"unsupported action space {type(space).__name__}; valid: Discrete, Box")

    def encode(self, action: jax.Array) -> jax.Array:
        """``action [B] or [B, A] -> [B, A]``: one-hot for discrete actions, the vector itself otherwise."""
        if self.continuous:
            return action.astype(jnp.float32)
        return jax.nn.one_hot(action, self.dim)

    def to_env(self, action: jax.Array) -> jax.Array:
        if self.continuous:
            return jnp.clip(action, self.low, self.high).reshape(action.shape[:-1] + self.shape)
        return action


class Transition(NamedTuple):
    obs: jax.Array  # [T, E, D] augmented observation
    first: jax.Array  # [T, E] the observation starts an episode
    action: jax.Array  # [T, E] or [T, E, A]
    log_prob: jax.Array  # [T, E]
    value: jax.Array  # [T, E]
    reward: jax.Array  # [T, E]
    done: jax.Array  # [T, E] the episode ended with this step
    episode_return: jax.Array  # [T, E] return of the episode finished at this step, else 0
    episode_done: jax.Array  # [T, E]


@struct.dataclass
class RunnerState:
    train_state: TrainState
    env_state: Any
    obs: jax.Array  # [E, D_obs] latest raw observation
    first: jax.Array  # [E] the latest observation starts an episode
    prev_action: jax.Array  # [E, A] encoded previous action (zeros at episode start)
    carry: Any  # memory carry entering the next step
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class PPOParts:
    """The pieces of a PPO run, built once from a config."""

    config: PPOConfig
    env: Any
    env_params: Any
    network: ActorCritic
    actions: ActionSpec
    obs_dim: int
    init: Callable[[jax.Array], RunnerState]
    update: Callable[[RunnerState, Any], tuple[RunnerState, dict]]


class Rollout(NamedTuple):
    """Vectorised envs and the policy's memory between two steps (``E`` envs)."""

    env_state: Any
    obs: jax.Array  # [E, ...] latest raw observation
    first: jax.Array  # [E] the latest observation starts an episode
    prev_action: jax.Array  # [E, A] encoded previous action (zeros at episode start)
    carry: Any  # memory carry entering the next step

    @classmethod
    def start(cls, network: ActorCritic, actions: ActionSpec, env_state: Any, obs: jax.Array) -> "Rollout":
        """Fresh episodes in every env: first steps, no previous action, an empty memory."""
        n = obs.shape[0]
        return cls(env_state, obs, jnp.ones((n,), bool), jnp.zeros((n, actions.dim)), network.initialize_carry(n))


class Step(NamedTuple):
    """What one policy step in ``E`` envs gives training (all), evaluation and collection."""

    x: jax.Array  # [E, D + A + 1] the augmented observation the policy saw
    action: jax.Array  # [E] or [E, A] the policy's action
    env_action: jax.Array  # the action the env received (clipped and shaped)
    log_prob: jax.Array  # [E]
    value: jax.Array  # [E]
    reward: jax.Array  # [E]
    done: jax.Array  # [E] the episode ended with this step
    info: dict


def rollout_step(network: ActorCritic, actions: ActionSpec, params: Any, env: Any, env_params: Any, rollout: Rollout,
                 k_act: jax.Array, k_env: jax.Array, deterministic: bool = False,
                 env_params_axis: int | None = None) -> tuple[Rollout, Step]:
    """The one PPO rollout step, shared by training, evaluation and dataset collection: act on every env
    (sampled, or the policy's mode when ``deterministic``), step them, advance the memory.

    ``env_params_axis``: None when all envs share ``env_params``, 0 when it has a leading ``[E]`` axis.
    """
    x = augment(rollout.obs, rollout.prev_action, rollout.first)
    carry, (policy, value) = network.apply(params, rollout.carry, x, rollout.first, method="step")
    pi = policy_distribution(policy, params, actions.continuous)
    action = pi.mode() if deterministic else pi.sample(seed=k_act)
    env_action = actions.to_env(action)
    obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, env_params_axis))(
        jax.random.split(k_env, x.shape[0]), rollout.env_state, env_action, env_params)
    done = jnp.logical_or(terminated, truncated)
    prev_action = jnp.where(done[:, None], 0.0, actions.encode(action))
    return (Rollout(env_state, obs, done, prev_action, carry),
            Step(x, action, env_action, pi.log_prob(action), value, reward, done, info))


def augment(obs: jax.Array, prev_action: jax.Array, first: jax.Array) -> jax.Array:
    """``[E, D], [E, A], [E] -> [E, D + A + 1]``: observation, previous action, first-step flag."""
    obs = obs.reshape(obs.shape[0], -1).astype(jnp.float32)
    return jnp.concatenate([obs, prev_action, first[:, None].astype(jnp.float32)], axis=-1)


def gae(values: jax.Array, rewards: jax.Array, dones: jax.Array, last_value: jax.Array,
        gamma: float, lam: float) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation over ``[T, E]``; returns ``(advantages, value targets)``."""

    def body(carry, step):
        advantage, next_value = carry
        value, reward, done = step
        not_done = 1.0 - done.astype(jnp.float32)
        delta = reward + gamma * next_value * not_done - value
        advantage = delta + gamma * lam * not_done * advantage
        return (advantage, value), advantage

    _, advantages = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value), (values, rewards, dones),
                                 reverse=True)
    return advantages, advantages + values


def build(config: PPOConfig) -> PPOParts:
    """Build env, network and the pure ``init(key)`` / ``update(state, _)`` functions."""
    env, env_params = envs.make(config.env_name, **dict(config.env_options))
    env = EpisodeStats(env)
    actions = ActionSpec.from_space(env.action_space(env_params))
    obs_dim = int(np.prod(env.observation_space(env_params).shape))
    memory = ssm.make(config.model, features=config.features, num_layers=config.num_layers,
                      **dict(config.model_options))
    network = ActorCritic(memory=memory, action_dim=actions.dim, continuous=actions.continuous,
                          features=config.features, encoder_hidden=config.encoder_hidden,
                          head_hidden=config.head_hidden, precision=config.precision)
    in_dim = obs_dim + actions.dim + 1
    num_envs, num_steps, minibatch_envs = config.num_envs, config.num_steps, config.num_envs // config.num_minibatches

    def schedule(count):
        if not config.anneal_lr:
            return config.lr
        steps_per_update = config.update_epochs * config.num_minibatches
        return config.lr * (1.0 - (count // steps_per_update) / config.num_updates)

    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule, eps=1e-5))

    def init(key: jax.Array) -> RunnerState:
        k_net, k_env, key = jax.random.split(key, 3)
        params = network.init(k_net, jnp.zeros((1, num_envs, in_dim)), jnp.zeros((1, num_envs), bool))
        train_state = TrainState.create(apply_fn=network.apply, params=params, tx=tx)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_env, num_envs), env_params)
        start = Rollout.start(network, actions, env_state, obs)
        return RunnerState(train_state=train_state, env_state=start.env_state, obs=start.obs, first=start.first,
                           prev_action=start.prev_action, carry=start.carry, key=key)

    def env_step(runner: RunnerState, _):
        key, k_act, k_env = jax.random.split(runner.key, 3)
        rollout = Rollout(runner.env_state, runner.obs, runner.first, runner.prev_action, runner.carry)
        rollout, step = rollout_step(network, actions, runner.train_state.params, env, env_params, rollout, k_act,
                                     k_env)
        transition = Transition(step.x, runner.first, step.action, step.log_prob, step.value, step.reward, step.done,
                                step.info["episode_return"], step.info["episode_done"])
        runner = runner.replace(env_state=rollout.env_state, obs=rollout.obs, first=rollout.first,
                                prev_action=rollout.prev_action, carry=rollout.carry, key=key)
        return runner, transition

    def loss_fn(params, carry0, batch: Transition, advantages, targets):
        _, (policy, value) = network.apply(params, carry0, batch.obs, batch.first, method="scan")
        pi = policy_distribution(policy, params, actions.continuous)
        log_prob = pi.log_prob(batch.action)
        value_clipped = batch.value + jnp.clip(value - batch.value, -config.clip_eps, config.clip_eps)
        value_loss = 0.5 * jnp.maximum((value - targets) ** 2, (value_clipped - targets) ** 2).mean()
        ratio = jnp.exp(log_prob - batch.log_prob)
        adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        actor_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv).mean()
        entropy = pi.entropy().mean()
        total = actor_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        approx_kl = ((ratio - 1) - jnp.log(ratio)).mean()
        clip_fraction = (jnp.abs(ratio - 1) > config.clip_eps).mean()
        return total, dict(actor_loss=actor_loss, value_loss=value_loss, entropy=entropy, approx_kl=approx_kl,
                           clip_fraction=clip_fraction)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def update_minibatch(train_state: TrainState, minibatch):
        carry0, batch, advantages, targets = minibatch
        (loss, aux), grads = grad_fn(train_state.params, carry0, batch, advantages, targets)
        # before clipping: a norm far above max_grad_norm says the updates are being cut short
        return train_state.apply_gradients(grads=grads), dict(aux, loss=loss, grad_norm=optax.global_norm(grads))

    def update_epoch(state, _):
        train_state, carry0, traj, advantages, targets, key = state
        key, k_perm = jax.random.split(key)
        perm = jax.random.permutation(k_perm, num_envs)

        def split_time_major(a):  # [T, E, ...] -> [M, T, E/M, ...] in permuted env order
            a = jnp.take(a, perm, axis=1)
            a = a.reshape((num_steps, config.num_minibatches, minibatch_envs) + a.shape[2:])
            return jnp.swapaxes(a, 0, 1)

        def split_batch_major(a):  # [E, ...] -> [M, E/M, ...]
            return jnp.take(a, perm, axis=0).reshape((config.num_minibatches, minibatch_envs) + a.shape[1:])

        minibatches = (
            jax.tree_util.tree_map(split_batch_major, carry0),
            jax.tree_util.tree_map(split_time_major, traj),
            split_time_major(advantages),
            split_time_major(targets),
        )
        train_state, metrics = jax.lax.scan(update_minibatch, train_state, minibatches)
        return (train_state, carry0, traj, advantages, targets, key), metrics

    def update(runner: RunnerState, _) -> tuple[RunnerState, dict]:
        carry0 = runner.carry
        runner, traj = jax.lax.scan(env_step, runner, None, num_steps)
        # the middle key once sampled an unused last action: still split off so every result stays the same
        key, _, k_epochs = jax.random.split(runner.key, 3)
        x_last = augment(runner.obs, runner.prev_action, runner.first)
        _, (_, last_value) = network.apply(runner.train_state.params, runner.carry, x_last, runner.first, method="step")
        advantages, targets = gae(traj.value, traj.reward, traj.done, last_value, config.gamma, config.gae_lambda)
        (train_state, *_), losses = jax.lax.scan(
            update_epoch, (runner.train_state, carry0, traj, advantages, targets, k_epochs), None,
            config.update_epochs)
        episodes = traj.episode_done.sum()
        metrics = {k: v.mean() for k, v in losses.items()}
        # share of the return targets' variance the value function explains before this update (1 = all)
        metrics["explained_variance"] = 1.0 - jnp.var(targets - traj.value) / jnp.maximum(jnp.var(targets), 1e-8)
        metrics["lr"] = jnp.asarray(schedule(runner.train_state.step), jnp.float32)
        metrics["episodes"] = episodes
        metrics["episode_return"] = jnp.where(
            episodes > 0, (traj.episode_return * traj.episode_done).sum() / jnp.maximum(episodes, 1), jnp.nan)
        return runner.replace(train_state=train_state, key=key), metrics

    return PPOParts(config, env, env_params, network, actions, obs_dim, init, update)


def make_train(config: PPOConfig) -> Callable[[jax.Array], tuple[RunnerState, dict]]:
    """A whole run as one pure function ``train(key) -> (final state, metrics [num_updates])``.

    Jit it, or ``jax.vmap`` it over a batch of keys to train several seeds at once.
    """
    parts = build(config)

    def train(key: jax.Array):
        return jax.lax.scan(parts.update, parts.init(key), None, config.num_updates)

    return train


def make_chunk(parts: PPOParts) -> Callable[[RunnerState], tuple[RunnerState, dict]]:
    """``config.chunk_updates`` updates in one call: the unit of progress, logging and checkpointing."""

    def chunk(runner: RunnerState):
        return jax.lax.scan(parts.update, runner, None, parts.config.chunk_updates)

    return chunk


__all__ = ["ActionSpec", "PPOParts", "Rollout", "RunnerState", "Step", "Transition", "augment", "build", "gae",
           "make_chunk", "make_train", "rollout_step"]
