"""A small causal self-attention backbone (GPT-style, pre-norm) for the Decision Transformer.

``CausalTransformer(features, num_layers, num_heads, dropout)``: ``x [B, L, H] -> [B, L, H]``. Each
block is ``x + drop(attn(LN(x)))`` then ``x + drop(mlp(LN(x)))`` with a 4x GELU MLP; a final
LayerNorm closes the stack. Position ``i`` attends to positions ``<= i`` only (a lower-triangular
mask). There are no positional embeddings: DT adds a learned timestep embedding to its tokens.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class CausalSelfAttention(nn.Module):
    features: int
    num_heads: int = 1
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        b, length, h = x.shape
        if h % self.num_heads:
            raise ValueError(f"features ({h}) must be divisible by num_heads ({self.num_heads})")
        head_dim = h // self.num_heads
        qkv = nn.Dense(3 * self.features, name="qkv")(x)
        q, k, v = jnp.split(qkv.reshape(b, length, 3, self.num_heads, head_dim), 3, axis=2)
        q, k, v = (a[:, :, 0] for a in (q, k, v))  # [B, L, heads, head_dim]
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(jnp.float32(head_dim))
        mask = jnp.tril(jnp.ones((length, length), bool))
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        weights = nn.Dropout(self.dropout)(jax.nn.softmax(scores, axis=-1), deterministic=deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, length, self.features)
        return nn.Dropout(self.dropout)(nn.Dense(self.features, name="out")(out), deterministic=deterministic)


class GPTBlock(nn.Module):
    features: int
    num_heads: int = 1
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        x = x + CausalSelfAttention(self.features, self.num_heads, self.dropout)(nn.LayerNorm()(x), deterministic)
        y = nn.Dense(4 * self.features)(nn.LayerNorm()(x))
        y = nn.Dense(self.features)(nn.gelu(y))
        return x + nn.Dropout(self.dropout)(y, deterministic=deterministic)


class CausalTransformer(nn.Module):
    """``num_layers`` pre-norm GPT blocks and a final LayerNorm: ``[B, L, H] -> [B, L, H]``, causal."""

    features: int
    num_layers: int = 3
    num_heads: int = 1
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        for _ in range(self.num_layers):
            x = GPTBlock(self.features, self.num_heads, self.dropout)(x, deterministic)
        return nn.LayerNorm()(x)
