"""Shared pieces of the POPGym games: the base class, params, one-hot and card dealing.

Dealing from a shuffled deck is done without ever materialising the deck: the state keeps how
many cards of each type are left, and every deal draws a type with probability proportional to
its remaining count. That is exactly the distribution of dealing from a uniformly shuffled deck
(sampling without replacement), and it costs one uniform number per card instead of a full
permutation at every reset (gymnax computes a reset at every step for its auto-reset).

Episode caps: ``params.max_steps_in_episode`` is POPGym's episode length for games that POPGym
truncates (Concentration, the bandit, the control games). Games that always end by termination
after a fixed number of steps (the other card games) get a cap one step beyond, which never
fires, so their last step reports ``terminated`` only, as in POPGym. Every env also has
``max_episode_length``, POPGym's episode length.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment

from ssmrl.envs.base import SettingsIdentity

DECK_SIZE = 52
NUM_SUITS = 4
NUM_RANKS = 13
NUM_COLORS = 2


@struct.dataclass
class PopGymParams:
    """Non-static settings: the episode cap (gymnax truncates when ``time >= max_steps``)."""

    max_steps_in_episode: int = 1


class PopGymEnv(SettingsIdentity, environment.Environment):
    """Base class of the POPGym games: identity by settings, params from ``max_steps``."""

    @property
    def default_params(self) -> PopGymParams:
        return PopGymParams(max_steps_in_episode=self.max_steps)


def one_hot(index: jax.Array, n: int) -> jax.Array:
    """Float32 one-hot vector of length ``n`` (all zeros when ``index`` is out of range)."""
    return (jnp.arange(n, dtype=jnp.int32) == index).astype(jnp.float32)


def full_deck_counts(num_types: int, num_cards: int) -> jax.Array:
    """Remaining-card counts of a fresh deck: ``num_cards / num_types`` cards of each type."""
    return jnp.full((num_types,), num_cards // num_types, dtype=jnp.int32)


def deal(key: jax.Array, remaining: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Deal one card from a shuffled deck described by its remaining counts per type.

    Returns ``(card_type, remaining_after)``.
    """
    return deal_uniform(jax.random.uniform(key), remaining)


def deal_uniform(u: jax.Array, remaining: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:func:`deal` driven by a given ``u ~ U[0, 1)`` (to draw several cards from one key)."""
    total = remaining.sum()
    r = jnp.floor(u * total.astype(jnp.float32)).astype(jnp.int32)
    r = jnp.minimum(r, total - 1)
    card = jnp.sum(jnp.cumsum(remaining) <= r).astype(jnp.int32)
    return card, remaining - (jnp.arange(remaining.shape[0]) == card).astype(jnp.int32)
