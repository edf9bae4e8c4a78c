"""Actor-critic with a sequence-model memory (Lu et al. 2023 layout).

``obs -> Dense(encoder_hidden) -> Dense(features) -> memory -> actor head / critic head``,
leaky-ReLU throughout. The memory is any ``ssm`` registry entry, so the network keeps the two-mode
contract: ``scan`` over ``[T, B, D]`` for training, ``step`` over ``[B, D]`` for acting.
"""

from __future__ import annotations

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.ssm.base import SequenceLayer
from ssmrl.ssm.precision import dense_group, matmul_precision


class ActorCritic(nn.Module):
    """Outputs ``(policy_params, value)``: logits ``[..., A]`` (discrete) or the Gaussian mean."""

    memory: SequenceLayer
    action_dim: int
    continuous: bool
    features: int
    encoder_hidden: int = 128
    head_hidden: int = 128
    precision: str = "f32"  # "bf16": bf16 matmuls with f32 accumulation (ssm.precision)

    def setup(self):
        self.encoder = [nn.Dense(self.encoder_hidden), nn.Dense(self.features)]
        self.actor = [nn.Dense(self.head_hidden), nn.Dense(self.head_hidden)]
        self.critic = [nn.Dense(self.head_hidden), nn.Dense(self.head_hidden)]
        # A near-zero policy output starts every run from a near-uniform policy.
        self.actor_out = nn.Dense(self.action_dim, kernel_init=nn.initializers.normal(0.01))
        self.critic_out = nn.Dense(1)
        if self.continuous:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))

    @staticmethod
    def _mlp(layers, x):
        for layer in layers:
            x = nn.leaky_relu(layer(x))
        return x

    def _heads(self, h: jax.Array):
        # The two heads' first layers read the same h: one matmul of twice the width (same params).
        a, c = (nn.leaky_relu(y) for y in dense_group([self.actor[0], self.critic[0]], h))
        policy = self.actor_out(self._mlp(self.actor[1:], a))
        value = self.critic_out(self._mlp(self.critic[1:], c))[..., 0]
        return policy, value

    def initialize_carry(self, batch_size: int):
        return self.memory.initialize_carry(batch_size)

    def scan(self, carry, obs: jax.Array, resets: jax.Array):
        """``obs [T, B, D], resets [T, B] -> (carry, (policy [T, B, A], value [T, B]))``."""
        with matmul_precision(self.precision):
            carry, h = self.memory.scan(carry, self._mlp(self.encoder, obs), resets)
            return carry, self._heads(h)

    def step(self, carry, obs: jax.Array, reset: jax.Array):
        """``obs [B, D], reset [B] -> (carry, (policy [B, A], value [B]))``."""
        with matmul_precision(self.precision):
            carry, h = self.memory.step(carry, self._mlp(self.encoder, obs), reset)
            return carry, self._heads(h)

    def __call__(self, obs: jax.Array, resets: jax.Array):
        return self.scan(self.initialize_carry(obs.shape[1]), obs, resets)[1]


def policy_distribution(policy: jax.Array, params, continuous: bool) -> distrax.Distribution:
    """The action distribution for the network's policy output (``params``: the network params)."""
    if continuous:
        log_std = params["params"]["log_std"]
        return distrax.MultivariateNormalDiag(policy, jnp.broadcast_to(jnp.exp(log_std), policy.shape))
    return distrax.Categorical(logits=policy)
