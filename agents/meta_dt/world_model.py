"""Meta-DT's context world model: the last k transitions of a task -> task vector z -> predicted r and s'.

A transition is the vector ``[s, a, r, s']`` (states normalised, reward scaled; ``D = 2 obs + act + 1``).
The context of step ``t`` is the ``k`` transitions before it in the same episode, oldest first; slots
before the episode start are zeros and flagged invalid (at ``t = 0`` the context is empty). The
encoder (any ``ssm`` registry model, GRU by default) reads ``[transition * valid, valid]`` per slot
and its last output becomes ``z``; decoders predict ``r`` and ``s'`` of step ``t`` from ``(s_t, a_t, z)``.
Its per-step prediction error is what the complementary prompt maximises (``agents.meta_dt.prompt``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssmrl import ssm
from ssmrl.agents.dt.train import DTState, make_train_chunk, make_train_step
from ssmrl.agents.meta_dt.config import WorldModelConfig, validate_world_model


def transition_features(states: jax.Array, actions: jax.Array, rewards: jax.Array,
                        next_states: jax.Array) -> jax.Array:
    """``[..., obs], [..., act], [...], [..., obs] -> [..., D]`` with ``D = 2 obs + act + 1``."""
    return jnp.concatenate([states, actions, rewards[..., None], next_states], -1)


def preceding(transitions: jax.Array, t: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The context of step ``t`` in one episode: ``transitions [T, D] -> (context [k, D], valid [k])``."""
    idx = t - k + jnp.arange(k)
    valid = idx >= 0
    return jnp.where(valid[:, None], transitions[jnp.maximum(idx, 0)], 0.0), valid


class ContextWorldModel(nn.Module):
    encoder: nn.Module  # an ssm registry SequenceLayer
    obs_dim: int
    features: int = 128
    task_dim: int = 16

    def setup(self):
        self.embed = nn.Dense(self.features)
        self.to_task = nn.Dense(self.task_dim)
        self.hidden = [nn.Dense(self.features), nn.Dense(self.features)]
        self.reward_head = nn.Dense(1)
        self.state_head = nn.Dense(self.obs_dim)

    def encode(self, context: jax.Array, valid: jax.Array) -> jax.Array:
        """``context [B, k, D], valid [B, k] -> z [B, Z]``."""
        v = valid[..., None].astype(jnp.float32)
        x = nn.relu(self.embed(jnp.concatenate([context * v, v], -1)))
        xt = jnp.swapaxes(x, 0, 1)  # [k, B, H]
        _, y = self.encoder.scan(self.encoder.initialize_carry(xt.shape[1]), xt, jnp.zeros(xt.shape[:2], bool))
        return self.to_task(y[-1])

    def decode(self, states: jax.Array, actions: jax.Array, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``states [B, obs], actions [B, act], z [B, Z] -> (reward [B], next_state [B, obs])``."""
        h = jnp.concatenate([states, actions, z], -1)
        for layer in self.hidden:
            h = nn.relu(layer(h))
        return self.reward_head(h)[:, 0], states + self.state_head(h)

    def __call__(self, context, valid, states, actions):
        z = self.encode(context, valid)
        return (z,) + self.decode(states, actions, z)


class WorldModelData(NamedTuple):
    """Stacked episodes ``[N, T, ...]``, normalised as the DT sees them."""

    transitions: jax.Array  # [N, T, D]
    states: jax.Array  # [N, T, obs]
    actions: jax.Array  # [N, T, act]
    rewards: jax.Array  # [N, T] scaled
    next_states: jax.Array  # [N, T, obs]


def world_model_data(states, actions, rewards, next_states) -> WorldModelData:
    return WorldModelData(transition_features(states, actions, rewards, next_states), states, actions, rewards,
                          next_states)


class WorldModelBatch(NamedTuple):
    context: jax.Array  # [B, k, D]
    valid: jax.Array  # [B, k]
    states: jax.Array  # [B, obs]
    actions: jax.Array  # [B, act]
    rewards: jax.Array  # [B]
    next_states: jax.Array  # [B, obs]


def sample_steps(data: WorldModelData, key: jax.Array, batch_size: int, k: int) -> WorldModelBatch:
    """Uniform (episode, step) pairs with their contexts."""
    n, horizon = data.rewards.shape
    k_ep, k_t = jax.random.split(key)
    episode = jax.random.randint(k_ep, (batch_size,), 0, n)
    t = jax.random.randint(k_t, (batch_size,), 0, horizon)
    context, valid = jax.vmap(preceding, (0, 0, None))(data.transitions[episode], t, k)
    return WorldModelBatch(context, valid, data.states[episode, t], data.actions[episode, t],
                           data.rewards[episode, t], data.next_states[episode, t])


@dataclasses.dataclass(frozen=True)
class WorldModelParts:
    config: WorldModelConfig
    model: ContextWorldModel
    init: Callable[[jax.Array], DTState]
    train_chunk: Callable[[DTState, WorldModelData], tuple[DTState, dict]]
    errors: Callable[..., jax.Array]  # (params, z [B, Z], states, actions, rewards, next_states) -> [B]
    annotate: Callable[[Any, WorldModelData], tuple[jax.Array, jax.Array]]  # -> z [N, T, Z], error [N, T]
    reporting_chunk: Callable[[Callable[[jax.Array], None]], Callable]  # as agents.dt.train.DTParts'


def build_world_model(config: WorldModelConfig, obs_dim: int, act_dim: int) -> WorldModelParts:
    validate_world_model(config)
    encoder = ssm.make(config.encoder, features=config.features, **dict(config.encoder_options))
    model = ContextWorldModel(encoder=encoder, obs_dim=obs_dim, features=config.features, task_dim=config.task_dim)
    k, dim = config.context_len, 2 * obs_dim + act_dim + 1
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(config.lr))

    def init(key: jax.Array) -> DTState:
        k_params, key = jax.random.split(key)
        params = model.init(k_params, jnp.zeros((1, k, dim)), jnp.ones((1, k), bool), jnp.zeros((1, obs_dim)),
                            jnp.zeros((1, act_dim)))
        return DTState.create(apply_fn=model.apply, params=params, tx=tx, key=key)

    def errors(params, z, states, actions, rewards, next_states) -> jax.Array:
        """Per-transition ``reward_weight * (r^ - r)^2 + state_weight * mean((s'^ - s')^2)``: ``[B]``."""
        reward, next_state = model.apply(params, states, actions, z, method="decode")
        return (config.reward_weight * jnp.square(reward - rewards)
                + config.state_weight * jnp.mean(jnp.square(next_state - next_states), -1))

    def loss_fn(params, batch: WorldModelBatch, key):
        del key  # no dropout
        z = model.apply(params, batch.context, batch.valid, method="encode")
        return jnp.mean(errors(params, z, batch.states, batch.actions, batch.rewards, batch.next_states))

    def chunk(on_step=None):
        return jax.jit(make_train_chunk(make_train_step(loss_fn),
                                        lambda data, key: sample_steps(data, key, config.batch_size, k),
                                        config.steps_per_chunk, on_step))

    def annotate(params, data: WorldModelData) -> tuple[jax.Array, jax.Array]:
        """z and the prediction error at every step of every episode: ``[N, T, Z]``, ``[N, T]``."""
        horizon = data.rewards.shape[1]

        def episode(ep):
            x, s, a, r, s2 = ep
            context, valid = jax.vmap(preceding, (None, 0, None))(x, jnp.arange(horizon), k)
            z = model.apply(params, context, valid, method="encode")
            return z, errors(params, z, s, a, r, s2)

        return jax.lax.map(episode, tuple(data), batch_size=64)

    return WorldModelParts(config, model, init, chunk(), jax.jit(errors), jax.jit(annotate), chunk)
