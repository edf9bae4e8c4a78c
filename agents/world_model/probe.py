"""A world model trained alone, without the agent: the reward-learning probe behind
scripts/world_model_reward_probe.py and the CI learning tests (random-policy data, or vectors paid by a threshold),
and the refits of scripts/world_model_count_probe.py (an agent's own replay); and the probe scripts' shared arguments
(``--option`` and ``--set NAME=VALUE``, the latter applied to a run's settings by :func:`with_settings`)."""

from __future__ import annotations

import argparse
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.config import ConfigError, from_fields, to_fields
from ssmrl.agents.world_model import config as wmc
from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import Parts, agent_keys, build, collect, init, init_params
from ssmrl.agents.world_model.world_model import next_latents, reward_mask, state, world_model_loss

SMALL = dict(num_envs=8, hidden=32, num_layers=1, state_size=8, latent_groups=8, latent_classes=8, vector_hidden=64,
             mlp_hidden=32, ac_hidden=16, ac_layers=1, batch_size=16, batch_length=16, prefill=16, total_steps=400)


def small_config(model: str, **overrides) -> wmc.WorldModelConfig:
    """The ``popgym`` preset at ``SMALL``'s sizes on RepeatPreviousEasy, with ``overrides``."""
    return wmc.validate(wmc.preset("popgym", env_name="RepeatPreviousEasy", model=model, **{**SMALL, **overrides}))


def small_parts(model: str, env=None, **overrides) -> Parts:
    """A small POPGym world model (``SMALL``) on RepeatPreviousEasy, or on ``env`` where given."""
    config = small_config(model, **overrides)
    return build(config) if env is None else build(config, env=env, env_params=env.default_params)


def threshold_parts(model: str, dims: int = 5, num_actions: int = 4, **overrides) -> Parts:
    """``small_parts``' world model on ``[dims]`` vectors with ``num_actions`` actions and no env, for
    :func:`threshold_reward_replay`."""
    return build(small_config(model, **overrides), num_actions=num_actions, obs_shape=(dims,), obs_dtype=jnp.float32)


def threshold_reward_replay(parts: Parts, key: jax.Array, steps: int, threshold: float) -> rb.Replay:
    """``steps`` rows of ``num_envs`` envs, one episode each: Gaussian vectors ``obs [steps, E, dims]``, uniform random
    actions and a reward of 1 where ``|obs[..., 0]| > threshold``, else 0 (paid on ``2 (1 - Phi(threshold))`` of the
    rows: 13% at 1.5, 2.3% at 2.27). A reward read off the size of the current observation, with nothing to remember
    and no dynamics: whether, and after how many updates, a world model learns a reward paid that often."""
    k_obs, k_action = jax.random.split(key)
    rows = (steps, parts.config.num_envs)
    obs = jax.random.normal(k_obs, (*rows, *parts.obs_shape))
    zeros = jnp.zeros(rows, jnp.int32)
    return rb.Replay(obs=obs, action=jax.random.randint(k_action, rows, 0, parts.num_actions),
                     reward=(jnp.abs(obs[..., 0]) > threshold).astype(jnp.float32), term=jnp.zeros(rows, bool),
                     first=jnp.zeros(rows, bool).at[0].set(True), trained=zeros, imagined=zeros,
                     size=jnp.asarray(steps, jnp.int32))


def random_policy_replay(parts: Parts, key: jax.Array, steps: int) -> rb.Replay:
    """``steps`` random-policy env steps of every env, in a fresh replay."""
    state = init(parts, key)
    return jax.jit(lambda s: collect(parts, s, steps, random_policy=True)[0])(state).replay


def fit_world_model(parts: Parts, replay: rb.Replay, updates: int, seed: int = 0, reward_scale: float = 1.0,
                    every: int = 0, on_metrics=None, params=None):
    """``updates`` world-model gradient steps on windows of ``replay``, from ``params`` (default: a fresh model)
    with a fresh optimiser; returns ``(params, metrics per update)``; ``on_metrics(i, params, metrics)`` is called
    every ``every`` updates with the metrics averaged over those ``every`` updates (one batch's loss varies with
    the few rewards it holds)."""
    config = parts.config
    if params is None:
        params = init_params(parts, agent_keys(jax.random.PRNGKey(seed))[0])["wm"]  # init()'s, with no env
    opt = parts.wm_tx.init(params)

    @jax.jit
    def update(params, opt, replay, key):
        k_batch, k_loss = jax.random.split(key)
        replay, batch = rb.sample(replay, k_batch, config.batch_size, config.batch_length)
        batch = {**batch, "reward": batch["reward"] * reward_scale}
        (_, (_, metrics)), grads = jax.value_and_grad(world_model_loss, has_aux=True)(params, parts.wm, config,
                                                                                     batch, k_loss)
        updates, opt = parts.wm_tx.update(grads, opt, params)
        return jax.tree.map(jnp.add, params, updates), opt, replay, metrics

    history = []
    for i in range(updates):
        params, opt, replay, metrics = update(params, opt, replay, jax.random.PRNGKey(1000 + i))
        history.append({k: float(v) for k, v in metrics.items()})
        if every and (i + 1) % every == 0 and on_metrics is not None:
            on_metrics(i + 1, params, {k: float(np.mean([h[k] for h in history[-every:]])) for k in history[-1]})
    return params, history


def reward_errors(parts: Parts, params, replay: rb.Replay, key: jax.Array, skip: int,
                  reward_scale: float = 1.0) -> tuple[float, float]:
    """Mean squared error of the predicted reward and of the mean reward (the best memoryless guess
    under a random policy) on 64 windows of ``replay``, from step ``skip`` of each window on (where
    :func:`~ssmrl.agents.world_model.world_model.reward_mask` defines a prediction)."""
    config = parts.config
    k_batch, k_obs = jax.random.split(key)
    _, batch = rb.sample(replay, k_batch, 64, config.batch_length)
    reward = batch["reward"] * reward_scale
    T, B = batch["first"].shape
    _, out = parts.wm.apply(params, parts.wm.initialize_carry(B), batch["obs"], batch["action"], batch["first"],
                            jax.random.split(k_obs, T), method="observe")
    logits, _ = parts.wm.apply(params, state(out), batch["action"], out["h"], next_latents(out), method="heads")
    predicted = parts.wm.reward_value(logits)
    mask = reward_mask(config.reward_input, batch["first"])[skip:]
    model = jnp.sum((predicted - reward)[skip:] ** 2 * mask) / jnp.sum(mask)
    chance = jnp.sum((reward - jnp.mean(reward))[skip:] ** 2 * mask) / jnp.sum(mask)
    return float(model), float(chance)


def layer_option(text: str) -> tuple[str, float]:
    """A probe script's ``--option NAME=VALUE`` (an ssm.make option of the drama / s4wm blocks) as
    ``(name, value)``; an argparse ``type``."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE, e.g. dt_max=0.01")
    return name, float(value)


def setting(text: str) -> tuple[str, object]:
    """A probe script's ``--set NAME=VALUE`` (a world-model config field) as ``(NAME, VALUE)``, the value parsed as
    JSON where it parses (``128``, ``[16, 32]``); an argparse ``type``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def with_settings(config: wmc.WorldModelConfig, changes: dict) -> wmc.WorldModelConfig:
    """``config`` with the fields ``changes`` changed, validated; ``ConfigError`` names an unknown field with the
    valid ones, or the value a field rejects."""
    fields = sorted(f.name for f in dataclasses.fields(wmc.WorldModelConfig))
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: not a world-model setting; valid: {', '.join(fields)}")
    return from_fields(wmc.WorldModelConfig, {**to_fields(config), **changes})
