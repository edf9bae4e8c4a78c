"""One sequence-model interface over the three backbones.

Time convention (STORM / Drama, and DreamerV3's RSSM re-indexed): the model state at step t is
``s_t = [z_t, h_{t-1}]``, where ``z_t`` is the categorical latent of frame t and ``h_{t-1}`` the
sequence output after ``(z_{t-1}, a_{t-1})``. Feeding ``(z_t, a_t)`` gives ``h_t``, from which the
world model predicts the reward and continuation of ``a_t`` and the prior of ``z_{t+1}``. A reset at
step t (frame t starts an episode) clears everything carried into step t: the backbone state and
``h_{t-1}`` (zeros). The flag ``first_t`` is an input too: a replay window or an imagination context
that starts inside an episode also starts from zeros, and without the flag the model could not tell
its first frame from an episode's (on RepeatFirst the reward then names the wrong card).

* ``drama``: in-projection (Dense, LayerNorm, SiLU), a stack of Mamba-2 blocks, final norm;
  posterior ``q(z_t | frame t)`` from the frame alone, so a whole window runs in parallel.
* ``s4wm``: the same with the blocks of any ``ssm`` registry layer (S4 by default).
* ``rssm``: DreamerV3's GRU RSSM: LayerNorm-GRU ``h_t = f(h_{t-1}, z_t, a_t)``, posterior
  ``q(z_t | h_{t-1}, frame t)``, so observing is a sequential scan.

Methods (all through ``SequenceModel.apply(params, ..., method=...)``):
``initialize_carry(B)``; ``observe(carry, embed [T,B,E], action [T,B,A], resets [T,B], keys [T])``;
``posterior(carry, embed_t [B,E], reset_t [B], key) -> (z_t, logp_t, h_prev)``;
``imagine_step(carry, z_t [B,L], action_t [B,A], reset_t [B]) -> (carry, h_t)``;
``follow(carry, z [T,B,L], action [T,B,A], resets [T,B]) -> (carry, h_prev, h)``;
``prior(h [..., H]) -> logp [..., G, C]``.
"""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl import ssm
from ssmrl.agents.world_model.config import block_layer
from ssmrl.agents.world_model.distributions import sample_latent, unimix_logits
from ssmrl.agents.world_model.networks import MLP


def _mask(x: jax.Array, reset: jax.Array) -> jax.Array:
    return jnp.where(reset[..., None], 0.0, x)


class LayerNormGRU(nn.Module):
    """DreamerV3's GRU cell: one Dense over ``[x, h]``, LayerNorm, update gate biased to keep ``h``."""

    features: int

    @nn.compact
    def __call__(self, h: jax.Array, x: jax.Array) -> jax.Array:
        parts = nn.LayerNorm()(nn.Dense(3 * self.features, use_bias=False)(jnp.concatenate([x, h], -1)))
        reset, cand, update = jnp.split(parts, 3, axis=-1)
        cand = jnp.tanh(jax.nn.sigmoid(reset) * cand)
        update = jax.nn.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * h


class SequenceModel(nn.Module):
    """Backbone ``kind`` (``drama`` | ``s4wm`` | ``rssm``) with posterior and prior heads; the posterior's has
    ``posterior_layers`` hidden layers (0: one Dense to the logits), the prior's ``mlp_layers``."""

    kind: str
    hidden: int
    num_layers: int
    state_size: int
    groups: int
    classes: int
    mlp_hidden: int
    mlp_layers: int
    unimix: float
    posterior_layers: int = 1
    s4wm_layer: str = "s4"
    layer_options: tuple = ()  # more ssm.make options of the blocks, as (name, value) pairs
    action_input: str = "joint"

    def setup(self):
        latent_logits = self.groups * self.classes
        self.in_proj = nn.Dense(self.hidden)
        self.in_norm = nn.LayerNorm()
        if self.action_input == "separate":
            self.action_proj = nn.Dense(self.hidden)
            self.action_norm = nn.LayerNorm()
        if self.kind == "rssm":
            self.cell = LayerNormGRU(self.hidden)
        else:
            self.backbone = self._make_backbone()
        self.post_head = MLP(self.mlp_hidden, self.posterior_layers, latent_logits)
        self.prior_head = MLP(self.mlp_hidden, self.mlp_layers, latent_logits)

    @nn.nowrap
    def _make_backbone(self) -> ssm.SequenceLayer:
        layer = block_layer(self.kind, self.s4wm_layer)
        if layer is None:
            raise ValueError(f"unknown world-model backbone {self.kind!r}; valid: ['drama', 's4wm', 'rssm']")
        # Layers without a state size (RNNs, attention) or final norm simply do not take one.
        settings = {"num_layers": self.num_layers, "state_size": self.state_size, "final_norm": True}
        accepted = ssm.options(layer)
        settings = {k: v for k, v in settings.items() if k in accepted}
        return ssm.make(layer, features=self.hidden, **settings, **dict(self.layer_options))

    @property
    def parallel(self) -> bool:
        return self.kind != "rssm"

    # -- pieces
    def _logp(self, logits: jax.Array) -> jax.Array:
        return unimix_logits(logits.reshape(*logits.shape[:-1], self.groups, self.classes), self.unimix)

    def _inputs(self, z: jax.Array, action: jax.Array, first: jax.Array) -> jax.Array:
        """``z [..., L]``, one-hot ``action [..., A]``, ``first [...]`` -> ``[..., H]``: one embedding of all three
        (``action_input="joint"``), or the latent's plus the action's and flag's (``"separate"``)."""
        control = jnp.concatenate([action, first[..., None].astype(z.dtype)], -1)
        if self.action_input == "separate":
            return nn.silu(self.in_norm(self.in_proj(z))) + nn.silu(self.action_norm(self.action_proj(control)))
        return nn.silu(self.in_norm(self.in_proj(jnp.concatenate([z, control], -1))))

    def prior(self, h: jax.Array) -> jax.Array:
        """``h [..., H] -> log p(z_{t+1} | h_t) [..., G, C]``."""
        return self._logp(self.prior_head(h))

    def _post_logp(self, embed: jax.Array, h_prev: jax.Array) -> jax.Array:
        x = embed if self.parallel else jnp.concatenate([embed, h_prev], -1)
        return self._logp(self.post_head(x))

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> dict:
        """Zeros (a fresh episode); call it on the unbound module, outside ``apply``."""
        seq = self._make_backbone().initialize_carry(batch_size) if self.parallel else ()
        return {"seq": seq, "h": jnp.zeros((batch_size, self.hidden), jnp.float32)}

    # -- step mode
    def posterior(self, carry: dict, embed_t: jax.Array, reset_t: jax.Array, key: jax.Array):
        """``(z_t [B, L], log q [B, G, C], h_{t-1} [B, H])`` for frame t (its embedding ``[B, E]``)."""
        h_prev = _mask(carry["h"], reset_t)
        logp = self._post_logp(embed_t, h_prev)
        return sample_latent(key, logp), logp, h_prev

    def imagine_step(self, carry: dict, z_t: jax.Array, action_t: jax.Array, reset_t: jax.Array):
        """Feed ``(z_t, a_t, reset_t)``: ``(carry, h_t [B, H])``; ``reset_t [B]`` (frame t starts an episode)
        clears the carry first."""
        chex.assert_rank([z_t, action_t], 2)
        x = self._inputs(z_t, action_t, reset_t)
        if self.parallel:
            seq, h = self.backbone.step(carry["seq"], x, reset_t)
        else:
            seq, h = (), self.cell(_mask(carry["h"], reset_t), x)
        return {"seq": seq, "h": h}, h

    # -- parallel mode
    def observe(self, carry: dict, embed: jax.Array, action: jax.Array, resets: jax.Array, keys: jax.Array):
        """Posterior pass over a window: ``embed [T, B, E]``, ``action [T, B, A]`` (one-hot ``a_t``),
        ``resets [T, B]``, ``keys [T]`` (one per step, as the step mode uses them).

        Returns ``(carry, out)`` with ``out``: ``z [T,B,L]``, ``post [T,B,G,C]``, ``h_prev [T,B,H]``,
        ``h [T,B,H]``, ``prior [T,B,G,C]`` (the prior of ``z_{t+1}``).
        """
        T, B = resets.shape
        chex.assert_shape([embed, action], (T, B, None))
        if self.parallel:
            post = self._post_logp(embed, None)
            z = jax.vmap(sample_latent)(keys, post)
            carry, h_prev, h = self.follow(carry, z, action, resets)
        else:
            def body(mdl, c, inputs):
                e_t, a_t, r_t, k_t = inputs
                z_t, logp_t, hp_t = mdl.posterior(c, e_t, r_t, k_t)
                c, h_t = mdl.imagine_step(c, z_t, a_t, r_t)
                return c, (z_t, logp_t, hp_t, h_t)

            scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False})
            carry, (z, post, h_prev, h) = scan(self, carry, (embed, action, resets, keys))
        return carry, {"z": z, "post": post, "h_prev": h_prev, "h": h, "prior": self.prior(h)}

    def follow(self, carry: dict, z: jax.Array, action: jax.Array, resets: jax.Array):
        """The sequence fed given latents ``z [T,B,L]`` with ``action [T,B,A]`` (one-hot) and ``resets [T,B]``:
        ``(carry, h_prev [T,B,H], h [T,B,H])``, as ``observe`` computes them from its posterior samples."""
        chex.assert_shape([z, action], (*resets.shape, None))
        h_start = carry["h"]
        if self.parallel:
            seq, h = self.backbone.scan(carry["seq"], self._inputs(z, action, resets), resets)
            carry = {"seq": seq, "h": h[-1]}
        else:
            def body(mdl, c, inputs):
                return mdl.imagine_step(c, *inputs)

            scan = nn.scan(body, variable_broadcast="params", split_rngs={"params": False})
            carry, h = scan(self, carry, (z, action, resets))
        return carry, _mask(jnp.concatenate([h_start[None], h[:-1]], 0), resets), h
