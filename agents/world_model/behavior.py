"""Actor-critic trained in imagination (DreamerV3): lambda-returns, percentile return normalisation,
a two-hot symlog critic regularised towards its slow (EMA) copy, REINFORCE actor with entropy bonus.

Rollouts start from the posterior state after a few context frames and never backpropagate into
the world model: world-model parameters are constants here.
"""

from __future__ import annotations

from typing import Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.agents.world_model.config import WorldModelConfig
from ssmrl.agents.world_model.distributions import (
    categorical_entropy,
    sample_latent,
    twohot_loss,
    twohot_mean,
    unimix_logits,
)
from ssmrl.agents.world_model.networks import MLP
from ssmrl.agents.world_model.world_model import WorldModel, value_bins


class Actor(nn.Module):
    """``s [..., S] -> log-probabilities [..., A]`` with 1% unimix (never fully deterministic)."""

    num_actions: int
    hidden: int
    layers: int
    unimix: float

    @nn.compact
    def __call__(self, s: jax.Array) -> jax.Array:
        return unimix_logits(MLP(self.hidden, self.layers, self.num_actions)(s), self.unimix)


class Critic(nn.Module):
    """``s [..., S] -> value logits [..., bins]`` (symlog two-hot), starting at 0."""

    hidden: int
    layers: int
    bins: int

    @nn.compact
    def __call__(self, s: jax.Array) -> jax.Array:
        return MLP(self.hidden, self.layers, self.bins, zero_out=True)(s)


def make_actor_critic(config: WorldModelConfig, num_actions: int) -> tuple[Actor, Critic]:
    return (Actor(num_actions, config.ac_hidden, config.ac_layers, config.unimix),
            Critic(config.ac_hidden, config.ac_layers, config.reward_bins))


# ``policy(key, s [N, S]) -> actions [N]``: what imagination rolls
Policy = Callable[[jax.Array, jax.Array], jax.Array]


def actor_policy(actor: Actor, actor_params) -> Policy:
    """``policy(key, s [N, S]) -> actions [N]``: the actor's sampled actions, as :func:`imagine` takes a policy."""
    return lambda key, s: jax.random.categorical(key, actor.apply(actor_params, s))


def imagine(wm: WorldModel, wm_params, policy: Policy, carry: dict, z0: jax.Array, reset0: jax.Array, horizon: int,
            key: jax.Array) -> dict:
    """Roll ``policy(key, s) -> actions [N]`` (the actor: :func:`actor_policy`) ``horizon`` steps in the model
    from ``s_0 = [z0 [N, L], h_prev]``.

    ``carry`` is the sequence carry into the start step, ``reset0 [N]`` whether the start frame
    begins an episode. Returns ``states [H+1, N, S]``, ``actions [H, N]``, ``reward [H, N]``,
    ``cont [H, N]`` (probability that the episode goes on after ``a_t``).
    """
    N = z0.shape[0]
    chex.assert_shape(reset0, (N,))
    h_prev0 = jnp.where(reset0[:, None], 0.0, carry["h"])

    def body(c, inputs):
        carry, z, h_prev, reset = c
        k_act, k_z = jax.random.split(inputs)
        s = jnp.concatenate([z, h_prev], -1)
        action = policy(k_act, s)
        carry, h = wm.apply(wm_params, carry, z, action, reset, method="imagine_step")
        z_next = sample_latent(k_z, wm.apply(wm_params, h, method="prior"))
        return (carry, z_next, h, jnp.zeros_like(reset)), (s, action, h)

    (_, z_last, h_last, _), (states, actions, hs) = jax.lax.scan(
        body, (carry, z0, h_prev0, reset0), jax.random.split(key, horizon))
    states = jnp.concatenate([states, jnp.concatenate([z_last, h_last], -1)[None]], 0)
    # s_{k+1} = [z_{k+1}, h_k] holds the latent a_k led to
    reward_logits, cont_logit = wm.apply(wm_params, states[:-1], actions, hs, states[1:, :, :z0.shape[-1]],
                                         method="heads")
    return {
        "states": jax.lax.stop_gradient(states),
        "actions": actions,
        "reward": wm.reward_value(reward_logits),
        "cont": jax.nn.sigmoid(cont_logit),
    }


def lambda_returns(reward: jax.Array, cont: jax.Array, values: jax.Array, gamma: float, lam: float) -> jax.Array:
    """``R_t = r_t + gamma c_t ((1 - lam) v_{t+1} + lam R_{t+1})``, ``R_H = v_H``.

    ``reward, cont [H, N]``, ``values [H+1, N]`` -> ``[H, N]``.
    """
    chex.assert_equal_shape([reward, cont, values[:-1]])

    def body(next_return, inputs):
        r, c, v_next = inputs
        ret = r + gamma * c * ((1.0 - lam) * v_next + lam * next_return)
        return ret, ret

    _, returns = jax.lax.scan(body, values[-1], (reward, cont, values[1:]), reverse=True)
    return returns


def actor_critic_losses(actor_params, critic_params, slow_critic_params, actor: Actor, critic: Critic,
                        traj: dict, return_scale: jax.Array, config: WorldModelConfig):
    """Losses on an imagined trajectory; ``return_scale`` is the EMA of the 5-95 percentile range.

    Returns ``(actor_loss, critic_loss, new_return_scale, metrics)``; differentiate the first two
    with respect to their own parameters.
    """
    sg = jax.lax.stop_gradient
    bins = value_bins(config)
    states = traj["states"]
    critic_logits = critic.apply(critic_params, states)
    values = twohot_mean(critic_logits, bins)
    returns = sg(lambda_returns(traj["reward"], traj["cont"], sg(values), config.gamma, config.lam))
    # weight of step t: probability the imagined episode is still running
    weight = sg(jnp.cumprod(jnp.concatenate([jnp.ones_like(traj["cont"][:1]), traj["cont"][:-1]], 0), 0))
    spread = jnp.percentile(returns, 95) - jnp.percentile(returns, 5)
    new_scale = config.return_norm_decay * return_scale + (1 - config.return_norm_decay) * spread
    scale = jnp.maximum(1.0, new_scale)

    logp = actor.apply(actor_params, states[:-1])
    logp_a = jnp.take_along_axis(logp, traj["actions"][..., None], -1)[..., 0]
    advantage = sg((returns - values[:-1]) / scale)
    entropy = categorical_entropy(logp)
    actor_loss = -jnp.mean(weight * (logp_a * advantage + config.entropy * entropy))

    slow_values = sg(twohot_mean(critic.apply(slow_critic_params, states[:-1]), bins))
    critic_loss = jnp.mean(weight * (twohot_loss(critic_logits[:-1], returns, bins)
                                     + config.slow_critic_reg * twohot_loss(critic_logits[:-1], slow_values, bins)))
    metrics = {
        "actor_loss": actor_loss, "critic_loss": critic_loss, "entropy": entropy.mean(),
        "imag_return": returns.mean(), "imag_reward": traj["reward"].mean(), "return_scale": new_scale,
    }
    return actor_loss, critic_loss, sg(new_scale), metrics
