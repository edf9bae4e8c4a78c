"""Decision Transformer training and evaluation as pure functions.

* :class:`DTConfig`: the run's settings, validated by :func:`validate`;
* :func:`prepare_data`: dataset episodes (``experiment.datasets.read_dataset``) -> stacked arrays with
  returns-to-go and the state normalisation;
* :func:`sample_batch`: K-step segments ``(rtg, states, actions, timesteps, mask)``. A segment starts
  at any step of an episode; steps past the episode end are zero-padded on the right and masked out of
  the loss (the backbone is causal, so padding never reaches a valid prediction). Built from
  :func:`sample_segments` (where) and :func:`take_segments` (what), which Meta-DT reuses for its z;
* :func:`build`: ``init(key, data) -> DTState``, the jitted ``train_step(state, batch) -> (state,
  metrics)`` (AdamW, linear warm-up, global-norm clipping, MSE on actions) and ``train_chunk``, made by
  :func:`make_train_step` / :func:`make_train_chunk` for any loss and batch sampler (also Meta-DT's);
* :func:`make_evaluate`: roll the model out in the env with a target return, subtracting each received
  reward from the return-to-go and keeping the last K steps as context.

Context at evaluation: step ``t`` is written at position ``min(t, K-1)`` of a K-step buffer (shifted left
by one once full) and the action is read at that position, so the first K steps see a left-aligned
context exactly like segments that start at step 0 of an episode in training.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from ssmrl.agents.dt.config import DTConfig, from_mapping, validate  # noqa: F401  (the train API names them)
from ssmrl.agents.dt.model import TOKENS_PER_STEP, DecisionTransformer, make_backbone

# -- data ------------------------------------------------------------------------------------------

class DTData(NamedTuple):
    """All episodes of a dataset, stacked: ``[N, T, ...]`` (every task's episodes, task by task)."""

    states: jax.Array  # [N, T, obs], normalised
    actions: jax.Array  # [N, T, act]
    rtg: jax.Array  # [N, T] return-to-go, divided by rtg_scale
    state_mean: jax.Array  # [obs]
    state_std: jax.Array  # [obs]


def returns_to_go(rewards: jax.Array) -> jax.Array:
    """``[..., T] -> [..., T]``: ``R_t = sum_{t' >= t} r_t'`` (undiscounted); jittable."""
    return jnp.flip(jnp.cumsum(jnp.flip(rewards, -1), -1), -1)


def prepare_data(episodes: Sequence[Mapping[str, np.ndarray]], rtg_scale: float,
                 stats: tuple[np.ndarray, np.ndarray] | None = None) -> DTData:
    """``stats``: the ``(mean, std)`` to normalise states with (another split's); default: these episodes'."""
    obs = np.concatenate([ep["observations"] for ep in episodes]).astype(np.float32)
    actions = np.concatenate([ep["actions"] for ep in episodes]).astype(np.float32)
    rewards = np.concatenate([ep["rewards"] for ep in episodes]).astype(np.float32)
    if stats is None:
        mean = obs.reshape(-1, obs.shape[-1]).mean(0)
        std = obs.reshape(-1, obs.shape[-1]).std(0) + 1e-6
    else:
        mean, std = (np.asarray(x, np.float32) for x in stats)
    return DTData(states=jnp.asarray((obs - mean) / std), actions=jnp.asarray(actions),
                  rtg=jnp.asarray(returns_to_go(rewards) / rtg_scale), state_mean=jnp.asarray(mean),
                  state_std=jnp.asarray(std))


class Batch(NamedTuple):
    rtg: jax.Array  # [B, K]
    states: jax.Array  # [B, K, obs]
    actions: jax.Array  # [B, K, act]
    timesteps: jax.Array  # [B, K] int
    mask: jax.Array  # [B, K] bool: a real step (not padding)


class Segments(NamedTuple):
    """Where ``B`` K-step segments lie in the stacked episodes: ``episode [B]``, ``steps [B, K]``, ``mask [B, K]``."""

    episode: jax.Array
    steps: jax.Array
    mask: jax.Array


def sample_segments(key: jax.Array, num_episodes: int, horizon: int, batch_size: int, context_len: int) -> Segments:
    """``batch_size`` segments, each from a uniform episode and start step; steps past the end are masked."""
    k_ep, k_start = jax.random.split(key)
    episode = jax.random.randint(k_ep, (batch_size,), 0, num_episodes)
    start = jax.random.randint(k_start, (batch_size,), 0, horizon)
    steps = start[:, None] + jnp.arange(context_len)[None]  # [B, K]
    return Segments(episode, steps, steps < horizon)


def take_segments(x: jax.Array, seg: Segments) -> jax.Array:
    """``x [N, T, ...] -> [B, K, ...]`` at the segments' steps, zero where masked."""
    picked = x[seg.episode[:, None], jnp.minimum(seg.steps, x.shape[1] - 1)]
    m = seg.mask.reshape(seg.mask.shape + (1,) * (picked.ndim - 2))
    return jnp.where(m, picked, 0)


def segment_batch(data: DTData, seg: Segments) -> Batch:
    return Batch(rtg=take_segments(data.rtg, seg), states=take_segments(data.states, seg),
                 actions=take_segments(data.actions, seg),
                 timesteps=jnp.where(seg.mask, seg.steps, 0).astype(jnp.int32), mask=seg.mask)


def sample_batch(data: DTData, key: jax.Array, batch_size: int, context_len: int) -> Batch:
    """``batch_size`` segments of ``context_len`` steps, each from a uniform episode and start step."""
    n, horizon = data.rtg.shape
    return segment_batch(data, sample_segments(key, n, horizon, batch_size, context_len))


# -- model and training ----------------------------------------------------------------------------

class DTState(TrainState):
    key: jax.Array = None


@dataclasses.dataclass(frozen=True)
class DTParts:
    config: DTConfig
    model: DecisionTransformer
    init: Callable[[jax.Array], DTState]
    train_step: Callable[[DTState, Batch], tuple[DTState, dict]]
    train_chunk: Callable[[DTState, DTData], tuple[DTState, dict]]
    # ``reporting_chunk(on_step)``: train_chunk calling ``on_step(loss)`` on the host after every step (a
    # progress bar); separate because an executable with a host callback stays out of the compile cache
    reporting_chunk: Callable[[Callable[[jax.Array], None]], Callable[[DTState, DTData], tuple[DTState, dict]]]


def make_model(config: DTConfig, act_dim: int, action_scale: float) -> DecisionTransformer:
    backbone = make_backbone(config.backbone, config.features, config.num_layers, TOKENS_PER_STEP * config.context_len,
                             config.num_heads, config.dropout, dict(config.backbone_options))
    return DecisionTransformer(backbone=backbone, act_dim=act_dim, features=config.features,
                               max_timestep=config.max_timestep, action_scale=action_scale, dropout=config.dropout)


def make_optimizer(config: DTConfig) -> optax.GradientTransformation:
    schedule = optax.linear_schedule(0.0, config.lr, max(config.warmup_steps, 1))
    schedule = schedule if config.warmup_steps > 0 else config.lr
    return optax.chain(optax.clip_by_global_norm(config.grad_clip),
                       optax.adamw(schedule, weight_decay=config.weight_decay))


def masked_action_loss(pred: jax.Array, actions: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean squared error over the real steps: ``pred, actions [B, K, act]``, ``mask [B, K]``."""
    err = jnp.sum(jnp.square(pred - actions), -1)
    mask = mask.astype(jnp.float32)
    return jnp.sum(err * mask) / jnp.maximum(jnp.sum(mask) * actions.shape[-1], 1.0)


def make_train_step(loss_fn: Callable[[Any, Any, jax.Array], jax.Array]) -> Callable:
    """``train_step(state, batch) -> (state, metrics)``: one gradient step on ``loss_fn(params, batch, key)``,
    where ``key`` (split off ``state.key``) drives dropout."""

    def train_step(state: DTState, batch: Any) -> tuple[DTState, dict]:
        key, k_drop = jax.random.split(state.key)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, k_drop)
        state = state.apply_gradients(grads=grads).replace(key=key)
        return state, {"loss": loss, "grad_norm": optax.global_norm(grads)}

    return train_step


def make_train_chunk(train_step: Callable, sample: Callable[[Any, jax.Array], Any], num_steps: int,
                     on_step: Callable[[jax.Array], None] | None = None) -> Callable:
    """``train_chunk(state, data) -> (state, metrics [num_steps])``: ``num_steps`` steps on batches
    ``sample(data, key)``, keys split off ``state.key``; ``on_step(loss)`` runs on the host after each step."""

    def train_chunk(state: DTState, data: Any) -> tuple[DTState, dict]:
        def body(state, _):
            key, k_batch = jax.random.split(state.key)
            state, metrics = train_step(state.replace(key=key), sample(data, k_batch))
            if on_step is not None:
                jax.debug.callback(on_step, metrics["loss"])
            return state, metrics

        return jax.lax.scan(body, state, None, num_steps)

    return train_chunk


def build(config: DTConfig, obs_dim: int, act_dim: int, action_scale: float) -> DTParts:
    validate(config)
    model = make_model(config, act_dim, action_scale)
    tx = make_optimizer(config)
    k = config.context_len

    def init(key: jax.Array) -> DTState:
        k_params, key = jax.random.split(key)
        params = model.init(k_params, jnp.zeros((1, k)), jnp.zeros((1, k, obs_dim)), jnp.zeros((1, k, act_dim)),
                            jnp.zeros((1, k), jnp.int32))
        return DTState.create(apply_fn=model.apply, params=params, tx=tx, key=key)

    def loss_fn(params, batch: Batch, key):
        pred = model.apply(params, batch.rtg, batch.states, batch.actions, batch.timesteps, deterministic=False,
                           rngs={"dropout": key})
        return masked_action_loss(pred, batch.actions, batch.mask)

    train_step = make_train_step(loss_fn)

    def chunk(on_step=None):
        return jax.jit(make_train_chunk(train_step, lambda data, key: sample_batch(data, key, config.batch_size, k),
                                        config.steps_per_chunk, on_step))

    return DTParts(config, model, init, jax.jit(train_step), chunk(), chunk)


# -- evaluation ------------------------------------------------------------------------------------

class Context(NamedTuple):
    """The last K steps fed to the model at evaluation, per env: ``[E, K, ...]``."""

    rtg: jax.Array  # [E, K] scaled return-to-go
    states: jax.Array  # [E, K, obs] normalised
    actions: jax.Array  # [E, K, act]
    timesteps: jax.Array  # [E, K]


def context_init(num_envs: int, context_len: int, obs_dim: int, act_dim: int) -> Context:
    return Context(jnp.zeros((num_envs, context_len)), jnp.zeros((num_envs, context_len, obs_dim)),
                   jnp.zeros((num_envs, context_len, act_dim)), jnp.zeros((num_envs, context_len), jnp.int32))


def window_write(x: jax.Array, t: jax.Array, value) -> jax.Array:
    """Write step ``t``'s ``value`` into a K-step window ``x [E, K, ...]``: at position ``min(t, K-1)``,
    after shifting the window left by one once it is full (``t >= K``)."""
    k = x.shape[1]
    x = jnp.where(t >= k, jnp.roll(x, -1, axis=1), x)
    return x.at[:, jnp.minimum(t, k - 1)].set(value)


def context_write(ctx: Context, t: jax.Array, rtg: jax.Array, state: jax.Array) -> tuple[Context, jax.Array]:
    """Add step ``t``'s return-to-go and state (its action still zero); returns ``(ctx, position)``."""
    ctx = Context(*(window_write(x, t, v) for x, v in zip(ctx, (rtg, state, 0.0, t))))
    return ctx, jnp.minimum(t, ctx.rtg.shape[1] - 1)


def make_evaluate(model: DecisionTransformer, env: Any, context_len: int, rtg_scale: float, num_episodes: int,
                  horizon: int | None = None) -> Callable:
    """``evaluate(params, task_params, targets, state_mean, state_std, key) -> dict``.

    ``task_params``: env params with a leading task axis [N]; ``targets``: the target return per task
    [N] (unscaled). Runs ``num_episodes`` episodes of ``horizon`` steps per task and returns
    ``returns [N, E]``, and per step ``rtg`` (the unscaled return-to-go fed to the model) and
    ``rewards``, both ``[T, N, E]``. ``rtg_0 = target``, ``rtg_{t+1} = rtg_t - r_t``.
    """
    obs_dim = int(np.prod(env.observation_space(env.default_params).shape))
    space = env.action_space(env.default_params)
    act_dim = int(np.prod(space.shape))
    horizon = horizon or int(env.default_params.max_steps_in_episode)

    def evaluate(params, task_params, targets, state_mean, state_std, key):
        n = jax.tree.leaves(task_params)[0].shape[0]
        e = n * num_episodes
        per_env = jax.tree.map(lambda x: jnp.repeat(jnp.asarray(x), num_episodes, axis=0), task_params)
        k_reset, key = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_reset, e), per_env)
        rtg0 = jnp.repeat(jnp.asarray(targets, jnp.float32), num_episodes)

        def body(carry, t):
            env_state, obs, rtg, ctx, key = carry
            key, k_env = jax.random.split(key)
            state = (obs.reshape(e, -1) - state_mean) / state_std
            ctx, pos = context_write(ctx, t, rtg / rtg_scale, state)
            pred = model.apply(params, ctx.rtg, ctx.states, ctx.actions, ctx.timesteps, deterministic=True)
            action = pred[:, pos]
            ctx = ctx._replace(actions=ctx.actions.at[:, pos].set(action))
            obs, env_state, reward, _, _, _ = jax.vmap(env.step)(jax.random.split(k_env, e), env_state,
                                                                 action.reshape((e,) + space.shape), per_env)
            return (env_state, obs, rtg - reward, ctx, key), (rtg, reward)

        init = (env_state, obs, rtg0, context_init(e, context_len, obs_dim, act_dim), key)
        _, (rtgs, rewards) = jax.lax.scan(body, init, jnp.arange(horizon))
        split = lambda x: x.reshape((horizon, n, num_episodes))  # noqa: E731
        return {"returns": rewards.sum(0).reshape(n, num_episodes), "rtg": split(rtgs), "rewards": split(rewards)}

    return jax.jit(evaluate)
