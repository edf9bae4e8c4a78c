"""The Decision Transformer network (Chen et al. 2021) over any causal backbone.

Step ``t`` of a K-step segment contributes three tokens, in this order::

    position 3t     return-to-go R_t   (Linear(1) + timestep embedding)
    position 3t+1   state s_t          (Linear(obs) + timestep embedding)
    position 3t+2   action a_t         (Linear(act) + timestep embedding)

The 3K tokens go through a LayerNorm and dropout, then the causal backbone; the action ``a_t`` is
predicted from the output at the state token ``3t+1`` (it has seen ``R_<=t, s_<=t, a_<t``), squashed
with ``tanh`` and scaled to the action bound. The backbone (:func:`make_backbone`) is any ``ssm`` registry
entry (``transformer``, ``s5``, ``mamba``, ...), run in parallel mode over the token sequence with no resets.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl import ssm
from ssmrl.ssm.base import SequenceLayer

TOKENS_PER_STEP = 3


def interleave(rtg_tokens: jax.Array, state_tokens: jax.Array, action_tokens: jax.Array) -> jax.Array:
    """``3 x [B, K, H] -> [B, 3K, H]`` in the order (R_0, s_0, a_0, R_1, s_1, a_1, ...)."""
    b, k, h = state_tokens.shape
    return jnp.stack([rtg_tokens, state_tokens, action_tokens], axis=2).reshape(b, TOKENS_PER_STEP * k, h)


class SSMBackbone(nn.Module):
    """A registry sequence model as a batch-major backbone: ``[B, L, H] -> [B, L, H]``, no resets.

    ``deterministic`` is not passed on: a registry model's dropout acts when ``apply`` gets a ``dropout``
    rng, which the DT gives exactly when it trains (``deterministic=False``).
    """

    layer: SequenceLayer

    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        del deterministic
        xt = jnp.swapaxes(x, 0, 1)  # [L, B, H]
        resets = jnp.zeros(xt.shape[:2], bool)
        _, y = self.layer.scan(self.layer.initialize_carry(xt.shape[1]), xt, resets)
        return jnp.swapaxes(y, 0, 1)


def make_backbone(name: str, features: int, num_layers: int, length: int, num_heads: int = 1, dropout: float = 0.0,
                  options: dict[str, Any] | None = None) -> nn.Module:
    """An ``ssm`` registry model (``ssm.available()``) over token sequences of at most ``length`` tokens.

    The DT's settings go to every entry that takes them (explicit ``options`` win): ``num_heads``,
    ``attention_dropout`` (``dropout``), ``memory`` (``length``, so a windowed attention sees the whole
    context) and a final LayerNorm.
    """
    if name not in ssm.available():
        raise ValueError(f"unknown backbone {name!r}; valid: {ssm.available()}")
    settings = {"num_heads": num_heads, "attention_dropout": dropout, "memory": length, "final_norm": True}
    accepted = ssm.options(name)
    options = {**{k: v for k, v in settings.items() if k in accepted}, **(options or {})}
    return SSMBackbone(ssm.make(name, features=features, num_layers=num_layers, **options))


class DecisionTransformer(nn.Module):
    backbone: nn.Module
    act_dim: int
    features: int = 128
    max_timestep: int = 1000
    action_scale: float = 1.0
    dropout: float = 0.1

    def setup(self):
        self.embed_rtg = nn.Dense(self.features)
        self.embed_state = nn.Dense(self.features)
        self.embed_action = nn.Dense(self.features)
        self.embed_time = nn.Embed(self.max_timestep, self.features)
        self.embed_norm = nn.LayerNorm()
        self.drop = nn.Dropout(self.dropout)
        self.head = nn.Dense(self.act_dim)

    def tokens(self, rtg: jax.Array, states: jax.Array, actions: jax.Array, timesteps: jax.Array,
               state_extra: jax.Array | None = None) -> jax.Array:
        """``rtg [B, K], states [B, K, obs], actions [B, K, act], timesteps [B, K] -> [B, 3K, H]``.

        ``state_extra [B, K, H]`` (optional) is added to the state tokens: Meta-DT's task vector, so that
        the state token is a linear map of ``[s, z]``.
        """
        time = self.embed_time(jnp.clip(timesteps, 0, self.max_timestep - 1))
        state_tokens = self.embed_state(states) + time
        if state_extra is not None:
            state_tokens = state_tokens + state_extra
        x = interleave(self.embed_rtg(rtg[..., None]) + time, state_tokens, self.embed_action(actions) + time)
        return self.embed_norm(x)

    def __call__(self, rtg, states, actions, timesteps, deterministic: bool = True) -> jax.Array:
        """Predicted actions ``[B, K, act]``; entry ``t`` is read from state token ``3t+1``."""
        x = self.drop(self.tokens(rtg, states, actions, timesteps), deterministic=deterministic)
        h = self.backbone(x, deterministic=deterministic)
        return jnp.tanh(self.head(h[:, 1::TOKENS_PER_STEP])) * self.action_scale
