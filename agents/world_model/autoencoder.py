"""The world model's own observation encoder and decoder, trained alone as an autoencoder on a replay's frames.

It splits "these convolutions at this size and learning rate are slow to draw what moves" from "the world model (its
KL, its sequence model, its other losses) keeps what moves out": a world model that draws no paddle while its
encoder and decoder, trained alone on the same frames, draw it within the same updates has a reason beyond the
convolutions. Between the encoder's features and the decoder, ``bottleneck``:

* ``none``: the features, as they are;
* ``onehot``: a Dense layer to ``groups x classes`` logits and a straight-through one-hot sample of each group's
  softmax: the form of the world model's latent, without its posterior MLP, its uniform mixture and its KL;
* ``dense``: the same Dense layer, no softmax (does the extra layer or the one-hot form hold the decoder back?);
* ``posterior``: the world model's posterior head in place of that Dense layer, an ``mlp_hidden``-wide MLP of
  ``mlp_layers`` (Dense, LayerNorm, SiLU) layers to the logits (one Dense with ``posterior_head=linear``), and the
  ``unimix`` uniform mixture before the sample: the drama / s4wm posterior of a frame, without its KL.

The loss is the world model's reconstruction loss (squared error summed over an observation's values, in
``preprocess``' units), in f32 whatever the run's ``precision``; what is drawn is read by
:func:`~ssmrl.agents.world_model.moving_content.moving_sums` on windows of frames, the moving pixels' error as a share
of the still frame's (0: what moves drawn as it was, 1: no better than the still frame).
"""

from __future__ import annotations

from typing import Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssmrl.agents.world_model.config import WorldModelConfig
from ssmrl.agents.world_model.distributions import sample_latent, unimix_logits
from ssmrl.agents.world_model.moving_content import moving_sums
from ssmrl.agents.world_model.networks import MLP, make_observation_networks, preprocess

BOTTLENECKS = ("none", "onehot", "dense", "posterior")


class FrameAutoencoder(nn.Module):
    """``obs [N, *obs_shape], key -> reconstruction [N, *obs_shape]`` (``preprocess``' units) through ``enc``, the
    ``bottleneck`` and ``dec``; ``latent`` is ``(groups, classes)`` of the latent bottlenecks, ``head`` the
    ``(mlp_hidden, mlp_layers)`` and ``unimix`` the uniform mixture of the ``posterior`` one."""

    enc: nn.Module
    dec: nn.Module
    bottleneck: str
    latent: tuple[int, int]
    head: tuple[int, int] = (0, 0)
    unimix: float = 0.0

    def setup(self):
        if self.bottleneck not in BOTTLENECKS:
            raise ValueError(f"unknown bottleneck {self.bottleneck!r}; valid: {list(BOTTLENECKS)}")
        width = self.latent[0] * self.latent[1]
        self.to_latent = MLP(*self.head, width) if self.bottleneck == "posterior" else nn.Dense(width)

    def __call__(self, obs: jax.Array, key: jax.Array) -> jax.Array:
        features = self.enc(obs)
        if self.bottleneck in ("onehot", "posterior"):
            logits = self.to_latent(features).reshape(*features.shape[:-1], *self.latent)
            logp = unimix_logits(logits, self.unimix) if self.bottleneck == "posterior" else jax.nn.log_softmax(logits)
            features = sample_latent(key, logp)
        elif self.bottleneck == "dense":
            features = self.to_latent(features)
        return self.dec(features)


def frame_autoencoder(config: WorldModelConfig, obs_shape: tuple[int, ...], bottleneck: str) -> FrameAutoencoder:
    """The autoencoder of ``config``'s world model's encoder and decoder for observations of ``obs_shape``, its
    latent bottlenecks ``latent_groups x latent_classes`` wide, its ``posterior`` head the world model's."""
    enc, dec = make_observation_networks(obs_shape, config.channels, config.kernel, config.decoder,
                                         config.vector_hidden, config.vector_layers, config.conv_weight_grad)
    return FrameAutoencoder(enc, dec, bottleneck, (config.latent_groups, config.latent_classes),
                            (config.mlp_hidden, config.posterior_layers),
                            config.unimix)


def reconstruction_loss(model: FrameAutoencoder, params, obs: jax.Array, key: jax.Array) -> jax.Array:
    """The world model's reconstruction loss of ``obs [N, *obs_shape]``: squared error summed over each observation's
    values, averaged over the ``N``."""
    error = (model.apply(params, obs, key) - preprocess(obs)) ** 2
    return jnp.sum(error.reshape(obs.shape[0], -1), -1).mean()


def fit_autoencoder(model: FrameAutoencoder, tx: optax.GradientTransformation, frames: np.ndarray,
                    windows: np.ndarray, updates: int, batch: int, seed: int = 0, every: int = 0,
                    on_report: Callable[[int, float, float | None], None] | None = None):
    """``updates`` gradient steps of ``tx`` on batches of ``batch`` frames drawn uniformly from ``frames [N,
    *obs_shape]``; returns ``(params, loss per update)``. Every ``every`` updates, ``on_report(i, mean loss over those
    updates, moving pixels' error)``, the error of the reconstructed ``windows [T, W, *obs_shape]`` (in batches of 64
    windows) as a share of their still frames' (None where nothing moves). The frames stay on the host: one batch at a
    time goes to the device."""
    T, W = windows.shape[:2]
    chex.assert_shape(windows, (T, W, *frames.shape[1:]))
    key = jax.random.PRNGKey(seed)
    params = model.init(key, jnp.asarray(frames[:2]), key)
    opt = tx.init(params)

    @jax.jit
    def update(params, opt, obs, key):
        loss, grads = jax.value_and_grad(lambda p: reconstruction_loss(model, p, obs, key))(params)
        steps, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, steps), opt, loss

    @jax.jit
    def measure(params, obs, key):
        T, B = obs.shape[:2]
        drawn = model.apply(params, obs.reshape(T * B, *obs.shape[2:]), key).reshape(obs.shape)
        return moving_sums(drawn, preprocess(obs)).sum((1, 2))

    rng = np.random.default_rng(seed)
    losses = []
    for i in range(1, updates + 1):
        obs = jnp.asarray(frames[rng.integers(0, frames.shape[0], batch)])
        params, opt, loss = update(params, opt, obs, jax.random.fold_in(key, i))
        losses.append(float(loss))
        if every and i % every == 0 and on_report is not None:
            sums = sum(np.asarray(measure(params, windows[:, j:j + 64], jax.random.fold_in(key, 10**6 + j)))
                       for j in range(0, W, 64))
            on_report(i, float(np.mean(losses[-every:])), float(sums[0] / sums[1]) if sums[2] else None)
    return params, losses
