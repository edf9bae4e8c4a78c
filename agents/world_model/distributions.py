"""The distributions a DreamerV3-style world model is trained with.

* Categorical latents: ``groups`` one-hot vectors of ``classes`` classes, sampled with a 1% uniform
  mixture (so no class ever has probability 0 and the KL stays finite) and straight-through
  gradients (the sample in the forward pass, the probabilities' gradient in the backward pass).
* ``symlog`` / ``symexp`` and the two-hot encoding over ``bins`` evenly spaced symlog values: rewards
  and returns of any scale become a classification with a stable loss.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def symlog(x: jax.Array) -> jax.Array:
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: jax.Array) -> jax.Array:
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


# ----------------------------------------------------------------------------- categorical latents

def unimix_logits(logits: jax.Array, unimix: float) -> jax.Array:
    """``logits [..., groups, classes]`` -> log-probabilities of ``(1 - unimix) p + unimix / classes``."""
    probs = jax.nn.softmax(logits, axis=-1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return jnp.log(probs)


def sample_latent(key: jax.Array, log_probs: jax.Array) -> jax.Array:
    """One-hot sample with straight-through gradients: ``log_probs [..., G, C] -> z [..., G * C]``."""
    index = jax.random.categorical(key, log_probs, axis=-1)
    one_hot = jax.nn.one_hot(index, log_probs.shape[-1], dtype=log_probs.dtype)
    probs = jnp.exp(log_probs)
    z = one_hot + probs - jax.lax.stop_gradient(probs)
    return z.reshape(*z.shape[:-2], -1)


def mode_latent(log_probs: jax.Array) -> jax.Array:
    """The most likely one-hot of each group, flattened: ``[..., G, C] -> [..., G * C]``."""
    one_hot = jax.nn.one_hot(jnp.argmax(log_probs, -1), log_probs.shape[-1], dtype=log_probs.dtype)
    return one_hot.reshape(*one_hot.shape[:-2], -1)


def categorical_kl(log_p: jax.Array, log_q: jax.Array) -> jax.Array:
    """``KL(p || q)`` summed over groups: ``[..., G, C] x2 -> [...]``."""
    chex.assert_equal_shape([log_p, log_q])
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=(-2, -1))


def categorical_entropy(log_p: jax.Array) -> jax.Array:
    """Entropy over the last axis: ``[..., C] -> [...]``."""
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


# ----------------------------------------------------------------------------- two-hot symlog

def bin_values(bins: int = 255, low: float = -20.0, high: float = 20.0) -> jax.Array:
    """The symlog-space bin centres ``[bins]``."""
    return jnp.linspace(low, high, bins)


def twohot(x: jax.Array, bins: jax.Array) -> jax.Array:
    """Encode ``symlog(x)`` ``[...]`` as weights on its two neighbouring bins ``[..., len(bins)]``."""
    y = jnp.clip(symlog(x), bins[0], bins[-1])
    above = jnp.clip(jnp.searchsorted(bins, y, side="right"), 1, bins.shape[0] - 1)
    below = above - 1
    span = bins[above] - bins[below]
    w_above = jnp.clip((y - bins[below]) / span, 0.0, 1.0)
    n = bins.shape[0]
    return (jax.nn.one_hot(below, n) * (1.0 - w_above)[..., None]
            + jax.nn.one_hot(above, n) * w_above[..., None])


def twohot_loss(logits: jax.Array, target: jax.Array, bins: jax.Array) -> jax.Array:
    """Cross-entropy of ``logits [..., bins]`` against the two-hot code of ``target [...]``."""
    chex.assert_equal_shape_prefix([logits, target], target.ndim)
    code = jax.lax.stop_gradient(twohot(target, bins))
    return -jnp.sum(code * jax.nn.log_softmax(logits, -1), axis=-1)


def twohot_mean(logits: jax.Array, bins: jax.Array) -> jax.Array:
    """The predicted value ``symexp(E[bin])``: ``[..., bins] -> [...]``."""
    return symexp(jnp.sum(jax.nn.softmax(logits, -1) * bins, axis=-1))
