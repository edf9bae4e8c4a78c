"""Training Meta-DT / Prompt-DT as pure functions, on the stacked data of ``agents.dt.train.prepare_data``.

Meta-DT: the world model (``agents.meta_dt.world_model``) is trained first and frozen; it annotates every
dataset step with its task vector z (from the k transitions before it, as at evaluation) and every
episode with its highest-error window (the prompt that episode would give). A training segment of task
i then gets the z of its own steps and the prompt of a random episode of task i, replaced by the empty
prompt with probability ``prompt_dropout``. Prompt-DT: no z; the prompt is a random window of a random
episode of the same task.

Episodes are stacked task by task, ``episodes_per_task`` each, so episode n belongs to task
``n // episodes_per_task``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.dt.model import TOKENS_PER_STEP, make_backbone
from ssmrl.agents.dt.train import (
    DTConfig,
    DTData,
    DTState,
    make_optimizer,
    make_train_chunk,
    make_train_step,
    masked_action_loss,
    sample_segments,
    segment_batch,
    take_segments,
    validate,
)
from ssmrl.agents.meta_dt.config import MetaDTConfig
from ssmrl.agents.meta_dt.config import validate as validate_meta
from ssmrl.agents.meta_dt.model import PromptedDecisionTransformer
from ssmrl.agents.meta_dt.prompt import Prompt, empty_prompt, gather_prompt
from ssmrl.agents.meta_dt.world_model import WorldModelData, world_model_data


class MetaData(NamedTuple):
    dt: DTData
    task: jax.Array | None  # [N, T, Z] task vectors (Meta-DT), None for Prompt-DT
    prompt_start: jax.Array | None  # [N] start of each episode's highest-error window (Meta-DT)


class MetaBatch(NamedTuple):
    rtg: jax.Array  # [B, K]
    states: jax.Array  # [B, K, obs]
    actions: jax.Array  # [B, K, act]
    timesteps: jax.Array  # [B, K]
    mask: jax.Array  # [B, K]
    task: jax.Array | None  # [B, K, Z]
    prompt: Prompt  # [B, Kp, ...]
    prompt_mask: jax.Array  # [B] bool: use the prompt (else the learned empty prompt)


def reward_scale(episodes: Sequence[dict]) -> float:
    """The std of every reward in the data: the world model predicts rewards divided by it."""
    return float(np.concatenate([ep["rewards"].ravel() for ep in episodes]).std() + 1e-6)


def prepare_world_model_data(episodes: Sequence[dict], data: DTData, scale: float) -> WorldModelData:
    """The world model's view of the same episodes, normalised with the DT's state statistics."""
    next_obs = np.concatenate([ep["next_observations"] for ep in episodes]).astype(np.float32)
    rewards = np.concatenate([ep["rewards"] for ep in episodes]).astype(np.float32)
    next_states = (jnp.asarray(next_obs) - data.state_mean) / data.state_std
    return world_model_data(data.states, data.actions, jnp.asarray(rewards / scale), next_states)


def sample_meta_batch(data: MetaData, key: jax.Array, config: MetaDTConfig, batch_size: int, context_len: int,
                      episodes_per_task: int) -> MetaBatch:
    n, horizon = data.dt.rtg.shape
    k_seg, k_src, k_start, k_drop = jax.random.split(key, 4)
    seg = sample_segments(k_seg, n, horizon, batch_size, context_len)
    batch = segment_batch(data.dt, seg)
    task_of = seg.episode // episodes_per_task
    source = task_of * episodes_per_task + jax.random.randint(k_src, (batch_size,), 0, episodes_per_task)
    if data.prompt_start is None:
        start = jax.random.randint(k_start, (batch_size,), 0, horizon - config.prompt_len + 1)
    else:
        start = data.prompt_start[source]
    prompt = gather_prompt(data.dt.rtg, data.dt.states, data.dt.actions, source, start, config.prompt_len)
    use_prompt = jax.random.uniform(k_drop, (batch_size,)) >= config.prompt_dropout
    task = None if data.task is None else take_segments(data.task, seg)
    return MetaBatch(*batch, task=task, prompt=prompt, prompt_mask=use_prompt)


@dataclasses.dataclass(frozen=True)
class MetaDTParts:
    config: MetaDTConfig
    dt_config: DTConfig
    model: PromptedDecisionTransformer
    init: Callable[[jax.Array], DTState]
    train_chunk: Callable[[DTState, MetaData], tuple[DTState, dict]]
    reporting_chunk: Callable[[Callable[[jax.Array], None]], Callable]  # as agents.dt.train.DTParts'


def make_prompted_model(config: MetaDTConfig, dt: DTConfig, act_dim: int, action_scale: float,
                        task_dim: int) -> PromptedDecisionTransformer:
    length = TOKENS_PER_STEP * (config.prompt_len + dt.context_len)
    backbone = make_backbone(dt.backbone, dt.features, dt.num_layers, length, dt.num_heads, dt.dropout,
                             dict(dt.backbone_options))
    return PromptedDecisionTransformer(backbone=backbone, act_dim=act_dim, features=dt.features,
                                       max_timestep=dt.max_timestep, action_scale=action_scale, dropout=dt.dropout,
                                       task_dim=task_dim if config.method == "meta_dt" else 0,
                                       prompt_len=config.prompt_len)


def build(config: MetaDTConfig, dt: DTConfig, obs_dim: int, act_dim: int, action_scale: float, task_dim: int,
          episodes_per_task: int) -> MetaDTParts:
    """``task_dim``: the world model's z size (ignored by Prompt-DT)."""
    validate(dt)
    validate_meta(config)
    if config.method == "prompt_dt" and config.prompt_dropout:
        raise ValueError("prompt_dropout is Meta-DT's (zero-shot from z alone); Prompt-DT always has its prompt: "
                         f"set it to 0, got {config.prompt_dropout!r}")
    model = make_prompted_model(config, dt, act_dim, action_scale, task_dim)
    tx = make_optimizer(dt)
    k, kp, z_dim = dt.context_len, config.prompt_len, model.task_dim

    def init(key: jax.Array) -> DTState:
        k_params, key = jax.random.split(key)
        task = jnp.zeros((1, k, z_dim)) if z_dim else None
        params = model.init(k_params, jnp.zeros((1, k)), jnp.zeros((1, k, obs_dim)), jnp.zeros((1, k, act_dim)),
                            jnp.zeros((1, k), jnp.int32), task, empty_prompt(1, kp, obs_dim, act_dim),
                            jnp.ones((1,), bool))
        return DTState.create(apply_fn=model.apply, params=params, tx=tx, key=key)

    def loss_fn(params, batch: MetaBatch, key):
        pred = model.apply(params, batch.rtg, batch.states, batch.actions, batch.timesteps, batch.task, batch.prompt,
                           batch.prompt_mask, deterministic=False, rngs={"dropout": key})
        return masked_action_loss(pred, batch.actions, batch.mask)

    def chunk(on_step=None):
        return jax.jit(make_train_chunk(
            make_train_step(loss_fn),
            lambda data, key: sample_meta_batch(data, key, config, dt.batch_size, k, episodes_per_task),
            dt.steps_per_chunk, on_step))

    return MetaDTParts(config, dt, model, init, chunk(), chunk)
