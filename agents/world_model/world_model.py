"""The world model (encoder, sequence model, decoder, reward and continue heads) and its loss.

Replay windows use the row layout ``(obs_t, a_t, r_t, term_t, first_t)``: ``r_t`` and ``term_t``
are what action ``a_t`` led to (``term_t`` is a lost life or game over, the training-only
termination signal), ``first_t`` marks frame t as the first of an episode (the sequence state resets
there). With this layout the auto-resetting env never needs its terminal frame.

Loss per window (DreamerV3 / Drama): summed squared error of the observation (pixels or vector) decoded from ``s_t =
[z_t, h_{t-1}]``; two-hot symlog cross-entropy (or symlog squared error: ``reward_output``) of ``r_t`` (read from
``h_t``, ``[s_t, a_t]`` or ``s_{t+1}``: ``reward_input``; from ``s_{t+1}`` only where frame t+1 is in the window and
the episode) and Bernoulli
cross-entropy of ``1 - term_t`` from ``h_t``; KL balancing between the prior from ``h_t`` and the posterior of frame
t+1 (free bits, 0.5 dynamics / 0.1 representation), skipped where frame t+1 starts a new episode. Optionally
(``prior_reward_scale``) the reward once more, read from the sequence model fed prior samples in place of the
posteriors, as imagination feeds it; and (``reward_ahead``) the rewards 1 .. K steps later, read from ``h_t`` with
the actions between, each head's loss at the reward's weight; and (``recon_moving_weight``) the observation's squared
error once more on the values that move within the window.
"""

from __future__ import annotations

from typing import Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssmrl.agents.world_model.config import WorldModelConfig
from ssmrl.agents.world_model.distributions import (
    bin_values,
    categorical_kl,
    sample_latent,
    symexp,
    symlog,
    twohot_loss,
    twohot_mean,
)
from ssmrl.agents.world_model.networks import MLP, make_observation_networks, preprocess
from ssmrl.agents.world_model.sequence import SequenceModel

MOVING = 0.05  # in preprocess' units: 13 of 255 pixel levels


class WorldModel(nn.Module):
    """All world-model parts; methods mirror :class:`SequenceModel` plus ``embed``, ``decode``, ``heads``."""

    kind: str
    num_actions: int
    obs_shape: tuple[int, ...]
    hidden: int
    num_layers: int
    state_size: int
    groups: int
    classes: int
    channels: Sequence[int]
    kernel: int
    mlp_hidden: int
    mlp_layers: int
    unimix: float
    reward_bins: int
    posterior_layers: int = 1
    s4wm_layer: str = "s4"
    layer_options: tuple = ()
    twohot_range: float = 20.0
    decoder: str = "subpixel"
    decoder_input: str = "state"
    conv_weight_grad: str = "matmul"
    vector_hidden: int = 512
    vector_layers: int = 1
    reward_input: str = "after_action"
    reward_output: str = "twohot"
    reward_zero_init: bool = True
    reward_norm: bool = True
    reward_ahead: int = 0
    action_input: str = "joint"

    def setup(self):
        self.encoder, self.observation_decoder = make_observation_networks(
            self.obs_shape, self.channels, self.kernel, self.decoder, self.vector_hidden, self.vector_layers,
            self.conv_weight_grad)
        self.sequence = self._sequence_model()
        per_action = self.num_actions if self.reward_input == "state_per_action" else 1
        self.reward_head = MLP(self.mlp_hidden, self.mlp_layers, per_action * self.reward_width,
                               zero_out=self.reward_zero_init, norm=self.reward_norm)
        self.cont_head = MLP(self.mlp_hidden, self.mlp_layers, 1)
        self.ahead_heads = [MLP(self.mlp_hidden, self.mlp_layers, self.reward_width, zero_out=self.reward_zero_init,
                                norm=self.reward_norm) for _ in range(self.reward_ahead)]

    @nn.nowrap
    def _sequence_model(self) -> SequenceModel:
        return SequenceModel(kind=self.kind, hidden=self.hidden, num_layers=self.num_layers,
                             state_size=self.state_size, groups=self.groups, classes=self.classes,
                             mlp_hidden=self.mlp_hidden, mlp_layers=self.mlp_layers, unimix=self.unimix,
                             posterior_layers=self.posterior_layers,
                             s4wm_layer=self.s4wm_layer, layer_options=self.layer_options,
                             action_input=self.action_input)

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> dict:
        return self._sequence_model().initialize_carry(batch_size)

    def embed(self, obs: jax.Array) -> jax.Array:
        return self.encoder(obs)

    def decode(self, z: jax.Array, h_prev: jax.Array) -> jax.Array:
        """``s_t = [z_t, h_{t-1}] -> observation [..., *obs_shape]`` in ``preprocess``'s space; with
        ``decoder_input="latent"`` from ``z_t`` alone (``h_prev`` unread)."""
        return self.observation_decoder(z if self.decoder_input == "latent" else jnp.concatenate([z, h_prev], -1))

    def heads(self, s: jax.Array, action: jax.Array, h: jax.Array, z_next: jax.Array | None = None
              ) -> tuple[jax.Array, jax.Array]:
        """What action ``a_t`` led to: ``(reward head output [..., reward_width], continue logit [...])`` from the state
        ``s_t = [z_t, h_{t-1}] [..., L+H]``, ``action [...]`` int, ``h_t [..., H]`` (the output after ``a_t``)
        and ``z_next [..., L]``, the latent of the frame ``a_t`` led to (``reward_input="next_state"`` only).

        The continue head reads ``h_t``; the reward head reads ``h_t`` (``reward_input="after_action"``, Drama),
        ``[s_t, a_t]`` (``"state_action"``), ``s_t`` alone to ``[A, bins]`` logits of which row ``a_t`` is taken
        (``"state_per_action"``), or ``s_{t+1} = [z_{t+1}, h_t]`` (``"next_state"``, DreamerV3's reward of the frame
        it arrived with): in training ``z_{t+1}`` is the posterior of frame t+1, whose pixels show what the action
        did (a score that changed), in imagination a sample of the prior from ``h_t``. With an SSM backbone
        ``h_{t-1}`` is a readout of the state, trained only for what is predicted from it: after_action never asks
        it to hold what the *next* reward needs, yet that is what the actor, which reads ``s_t``, must know to
        choose ``a_t``. Where the reward is "does the action match something in the state", ``[s_t, a_t]`` leaves a
        product of the two for the head's MLP to learn, and it sits at the action-blind optimum for hundreds of
        updates first; one output per action is that product already (RESULTS.md, world models on POPGym)."""
        if self.reward_input == "next_state":
            if z_next is None:
                raise ValueError('reward_input="next_state" reads z_next, the latent after the action: pass it')
            reward_logits = self.reward_head(jnp.concatenate([z_next, h], -1))
        elif self.reward_input == "state_per_action":
            reward_logits = jnp.take_along_axis(self.reward_per_action(s), action[..., None, None], -2)[..., 0, :]
        elif self.reward_input == "state_action":
            reward_logits = self.reward_head(jnp.concatenate([s, jax.nn.one_hot(action, self.num_actions)], -1))
        else:
            reward_logits = self.reward_head(h)
        return reward_logits, self.cont_head(h)[..., 0]

    def rewards_ahead(self, h: jax.Array, action: jax.Array) -> jax.Array:
        """``h_t [T, B, H]``, ``action [T, B]`` int -> ``[reward_ahead, T, B, reward_width]``: row ``k - 1`` is head
        k's output for ``r_{t+k}``, read from ``h_t`` and the one-hot actions ``a_{t+1} .. a_{t+k}`` (zeros past the
        window's end, where :func:`ahead_mask` drops the prediction). The imagined reward ``k + 1`` steps after a
        real frame is read from a state built on ``k`` prior samples after it; only what ``h_t`` holds of
        ``r_{t+k}`` can reach those samples, and the reward heads, which read a state that has seen frame
        ``t + k``, never ask it for that (docs/RESULTS.md, Pong's lost point)."""
        later = later_rows(jax.nn.one_hot(action, self.num_actions), self.reward_ahead)  # a_{t+k} [K, T, B, A]
        return jnp.stack([head(jnp.concatenate([h, *later[:k]], -1)) for k, head in enumerate(self.ahead_heads, 1)])

    def reward_per_action(self, s: jax.Array) -> jax.Array:
        """``reward_input="state_per_action"``: the reward head's output for every action ``[..., A, reward_width]``
        from ``s_t``."""
        return self.reward_head(s).reshape(*s.shape[:-1], self.num_actions, self.reward_width)

    @property
    def reward_width(self) -> int:
        """Outputs of the reward head per reward: ``reward_bins`` logits, or one symlog number."""
        return self.reward_bins if self.reward_output == "twohot" else 1

    @property
    def twohot_bins(self) -> jax.Array:
        """The two-hot reward bins ``[reward_bins]``, as :func:`value_bins` gives them from the config."""
        return bin_values(self.reward_bins, -self.twohot_range, self.twohot_range)

    @nn.nowrap
    def reward_value(self, reward_out: jax.Array) -> jax.Array:
        """The predicted reward ``[...]`` of the reward head's output ``[..., reward_width]``."""
        if self.reward_output == "symlog_mse":
            return symexp(reward_out[..., 0])
        return twohot_mean(reward_out, self.twohot_bins)

    @nn.nowrap
    def reward_error(self, reward_out: jax.Array, reward: jax.Array) -> jax.Array:
        """The reward loss ``[...]`` of the head's output ``[..., reward_width]`` against the paid ``reward [...]``:
        two-hot cross-entropy, or the squared error in symlog space."""
        if self.reward_output == "symlog_mse":
            return (reward_out[..., 0] - symlog(reward)) ** 2
        return twohot_loss(reward_out, reward, self.twohot_bins)

    def posterior(self, carry, obs_t, reset_t, key):
        return self.sequence.posterior(carry, self.embed(obs_t), reset_t, key)

    def imagine_step(self, carry, z_t, action_t, reset_t):
        return self.sequence.imagine_step(carry, z_t, jax.nn.one_hot(action_t, self.num_actions), reset_t)

    def prior(self, h):
        return self.sequence.prior(h)

    def follow(self, carry, z, action, resets):
        """``z [T, B, L]``, ``action [T, B]`` int, ``resets [T, B]``: :meth:`SequenceModel.follow`."""
        return self.sequence.follow(carry, z, jax.nn.one_hot(action, self.num_actions), resets)

    def observe(self, carry, obs, action, resets, keys):
        """``obs [T, B, *obs_shape]``, ``action [T, B]`` int, ``resets [T, B]``, ``keys [T]``."""
        return self.sequence.observe(carry, self.embed(obs), jax.nn.one_hot(action, self.num_actions),
                                     resets, keys)

    def __call__(self, carry, obs, action, resets, keys):
        """Everything once (for ``init``): observe, decode, heads."""
        _, out = self.observe(carry, obs, action, resets, keys)
        ahead = self.rewards_ahead(out["h"], action) if self.reward_ahead else None
        return (self.decode(out["z"], out["h_prev"]), self.heads(state(out), action, out["h"], next_latents(out)),
                ahead)


def make_world_model(config: WorldModelConfig, num_actions: int, obs_shape: tuple[int, ...]) -> WorldModel:
    return WorldModel(kind=config.model, num_actions=num_actions, obs_shape=tuple(obs_shape), hidden=config.hidden,
                      num_layers=config.num_layers, state_size=config.state_size, groups=config.latent_groups,
                      classes=config.latent_classes, channels=tuple(config.channels), kernel=config.kernel,
                      mlp_hidden=config.mlp_hidden, mlp_layers=config.mlp_layers, unimix=config.unimix,
                      posterior_layers=config.posterior_layers,
                      reward_bins=config.reward_bins, s4wm_layer=config.s4wm_layer, layer_options=config.layer_options,
                      decoder=config.decoder, decoder_input=config.decoder_input,
                      conv_weight_grad=config.conv_weight_grad, vector_hidden=config.vector_hidden,
                      vector_layers=config.vector_layers,
                      twohot_range=config.twohot_range, reward_input=config.reward_input,
                      reward_output=config.reward_output, reward_zero_init=config.reward_zero_init,
                      reward_norm=config.reward_norm, reward_ahead=config.reward_ahead,
                      action_input=config.action_input)


def state(out: dict) -> jax.Array:
    """``s_t = [z_t, h_{t-1}] [T, B, L+H]`` of ``observe``'s output: what the actor and the decoder read."""
    return jnp.concatenate([out["z"], out["h_prev"]], -1)


def next_latents(out: dict) -> jax.Array:
    """``z_{t+1} [T, B, L]`` of ``observe``'s output, the posterior of the frame each action led to, for
    ``heads``; the last step's has no frame in the window and repeats ``z_{T-1}``: :func:`reward_mask` drops it."""
    return jnp.concatenate([out["z"][1:], out["z"][-1:]], 0)


def reward_mask(reward_input: str, first: jax.Array) -> jax.Array:
    """``first [T, B]`` -> ``[T, B]`` float, 1 where an observed window's reward prediction is defined: everywhere,
    except with ``reward_input="next_state"`` the last step (no frame after it) and the steps whose next frame
    starts another episode (the auto-resetting env keeps no terminal frame, so an episode's last reward is not
    learned from it)."""
    if reward_input != "next_state":
        return jnp.ones(first.shape, jnp.float32)
    after = 1.0 - first[1:].astype(jnp.float32)
    return jnp.concatenate([after, jnp.zeros_like(after[:1])], 0)


def later_rows(x: jax.Array, steps: int) -> jax.Array:
    """``x [T, ...]`` -> ``[steps, T, ...]``: row ``k - 1`` holds ``x_{t+k}`` at position t, zeros past the end."""
    T = x.shape[0]
    padded = jnp.concatenate([x, jnp.zeros((steps, *x.shape[1:]), x.dtype)], 0)
    return jnp.stack([padded[k:k + T] for k in range(1, steps + 1)])


def ahead_mask(first: jax.Array, steps: int) -> jax.Array:
    """``first [T, B]`` -> ``[steps, T, B]`` float: row ``k - 1`` is 1 where ``r_{t+k}`` is in the window and in
    ``h_t``'s episode (no frame of ``t+1 .. t+k`` starts another), the rewards :meth:`WorldModel.rewards_ahead`
    predicts."""
    return jnp.cumprod(later_rows(1.0 - first.astype(jnp.float32), steps), 0)


def value_bins(config: WorldModelConfig) -> jax.Array:
    """The two-hot bins of rewards and values: ``reward_bins`` symlog values in ``+-twohot_range``."""
    return bin_values(config.reward_bins, -config.twohot_range, config.twohot_range)


def still_frame(real: jax.Array) -> jax.Array:
    """``real [T, B, *obs_shape]`` -> ``[B, *obs_shape]``: each value's median over the window's ``T`` rows, what
    stays put (walls, colours, the score)."""
    return jnp.median(real, axis=0)


def moving_values(real: jax.Array, still: jax.Array) -> jax.Array:
    """``real [T, B, *obs_shape]`` (``preprocess``' units), ``still`` its :func:`still_frame` -> bool, the shape of
    ``real``: the values more than ``MOVING`` from the still frame."""
    return jnp.abs(real - still) > MOVING


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(x * mask) / jnp.maximum(1.0, jnp.sum(mask))


def world_model_loss(params, model: WorldModel, config: WorldModelConfig, batch: dict, key: jax.Array):
    """Loss of one batch of windows ``batch[k] [T, B, ...]`` from a fresh carry.

    Returns ``(loss, (out, metrics))``; ``out`` is the posterior pass (for imagination starts).
    """
    obs, action, reward, term, first = (batch[k] for k in ("obs", "action", "reward", "term", "first"))
    T, B = first.shape
    chex.assert_shape(obs, (T, B, *model.obs_shape))
    chex.assert_shape([action, reward, term], (T, B))
    carry = model.initialize_carry(B)
    _, out = model.apply(params, carry, obs, action, first, jax.random.split(key, T), method="observe")
    sg = jax.lax.stop_gradient
    decoded = (out["z"], out["h_prev"]) if config.recon_gradient else (sg(out["z"]), sg(out["h_prev"]))
    recon = model.apply(params, *decoded, method="decode")
    obs_axes = tuple(range(2, obs.ndim))
    target = preprocess(obs)
    recon_error = (recon - target) ** 2
    recon_loss = jnp.sum(recon_error, axis=obs_axes).mean()
    reward_logits, cont_logit = model.apply(params, state(out), action, out["h"], next_latents(out), method="heads")
    reward_loss = _masked_mean(model.reward_error(reward_logits, reward), reward_mask(config.reward_input, first))
    cont_loss = optax.sigmoid_binary_cross_entropy(cont_logit, 1.0 - term.astype(jnp.float32)).mean()
    # prior from h_t against the posterior of frame t+1, unless t+1 starts another episode
    prior, post = out["prior"][:-1], out["post"][1:]
    mask = 1.0 - first[1:].astype(jnp.float32)
    dyn = categorical_kl(sg(post), prior)
    rep = categorical_kl(post, sg(prior))
    dyn_loss = _masked_mean(jnp.maximum(dyn, config.free_bits), mask)
    rep_loss = _masked_mean(jnp.maximum(rep, config.free_bits), mask)
    loss = (recon_loss + config.reward_loss_scale * reward_loss + cont_loss + config.dyn_scale * dyn_loss
            + config.rep_scale * rep_loss)
    optional = {}
    if config.reward_ahead:
        ahead = model.apply(params, out["h"], action, method="rewards_ahead")
        errors = model.reward_error(ahead, later_rows(reward, config.reward_ahead))  # [K, T, B]
        per_head = jax.vmap(_masked_mean)(errors, ahead_mask(first, config.reward_ahead))
        # each head at the reward's full weight, so that more heads do not thin the first ones' weight
        optional["reward_ahead_loss"] = per_head.mean()
        loss = loss + config.reward_loss_scale * per_head.sum()
    if config.recon_moving_weight:
        # a two-pixel ball's error is a few values of a frame's 12,288: summed with the background's it barely moves
        moving = moving_values(target, still_frame(target))
        optional["recon_moving_loss"] = jnp.sum(jnp.where(moving, recon_error, 0.0), obs_axes).mean()
        loss = loss + config.recon_moving_weight * optional["recon_moving_loss"]
    if config.prior_reward_scale:
        optional["prior_reward_loss"] = _prior_fed_reward_loss(params, model, config.reward_input, out, batch,
                                                               jax.random.fold_in(key, T))
        loss = loss + config.prior_reward_scale * optional["prior_reward_loss"]
    metrics = {
        "wm_loss": loss, "recon_loss": recon_loss, "reward_loss": reward_loss, "cont_loss": cont_loss,
        "dyn_kl": _masked_mean(dyn, mask), "rep_kl": _masked_mean(rep, mask), **optional,
    }
    return loss, (out, metrics)


def _prior_fed_reward_loss(params, model: WorldModel, reward_input: str, out: dict, batch: dict, key: jax.Array
                           ) -> jax.Array:
    """The reward loss of a window whose sequence model is fed, in place of each posterior ``z_t``, a sample of the
    prior from the posterior pass's ``h_{t-1}`` (the posterior stays where frame t starts the window or an episode),
    as imagination feeds it; with ``reward_input="next_state"`` ``z_{t+1}`` is a prior sample too. Imagination's
    second reward is read from a state built on its first prior sample: trained only on posteriors, the reward can
    rest on what the frame shows and the prior does not foresee (docs/RESULTS.md, Pong's lost point)."""
    action, reward, first = batch["action"], batch["reward"], batch["first"]
    T, B = first.shape
    k_prior, k_next = jax.random.split(key)
    predicted = sample_latent(k_prior, out["prior"][:-1])  # z_{t+1} [T-1, B, L] from h_t
    z = jnp.concatenate([out["z"][:1], jnp.where(first[1:, :, None], out["z"][1:], predicted)], 0)
    _, h_prev, h = model.apply(params, model.initialize_carry(B), z, action, first, method="follow")
    z_next = sample_latent(k_next, model.apply(params, h, method="prior")) if reward_input == "next_state" else None
    reward_out, _ = model.apply(params, state({"z": z, "h_prev": h_prev}), action, h, z_next, method="heads")
    return _masked_mean(model.reward_error(reward_out, reward), reward_mask(reward_input, first))
