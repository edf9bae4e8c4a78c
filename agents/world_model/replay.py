"""Replay buffer on device as a pure pytree, with uniform and DFS sampling of windows.

Rows are written in order, one per env step for all ``E`` envs at once, and never overwritten: the
capacity is the run length (``WorldModelConfig.capacity``), so a window never wraps around. A
window ``[start, start + T)`` of env ``e`` is valid once ``start + T <= size``.

DFS (Drama's dynamic frequency-based sampling): a world-model window starting at row ``i`` is drawn
with probability proportional to ``exp(-trained_i / temperature)``, where ``trained_i`` counts the
times it was drawn before, so fresh data is seen soon. Imagination contexts are drawn with
``exp(-max(0, imagined_i - trained_i) / temperature)``: rows imagined from more often than the
world model was trained on them are drawn less.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Replay:
    obs: jax.Array       # [capacity, E, *obs_shape], the env's dtype
    action: jax.Array    # int32 [capacity, E]
    reward: jax.Array    # f32 [capacity, E]
    term: jax.Array      # bool [capacity, E]: life lost or game over after the action
    first: jax.Array     # bool [capacity, E]: the frame starts an episode
    trained: jax.Array   # int32 [capacity, E]: world-model windows drawn from this start
    imagined: jax.Array  # int32 [capacity, E]: imagination contexts drawn from this start
    size: jax.Array      # int32 []: rows written


def init_replay(capacity: int, num_envs: int, obs_shape=(64, 64, 3), obs_dtype=jnp.uint8) -> Replay:
    rows = (capacity, num_envs)
    return Replay(
        obs=jnp.zeros((*rows, *obs_shape), obs_dtype), action=jnp.zeros(rows, jnp.int32),
        reward=jnp.zeros(rows, jnp.float32), term=jnp.zeros(rows, bool), first=jnp.zeros(rows, bool),
        trained=jnp.zeros(rows, jnp.int32), imagined=jnp.zeros(rows, jnp.int32), size=jnp.zeros((), jnp.int32))


def resize(replay: Replay, capacity: int) -> Replay:
    """The same rows in a replay of ``capacity`` rows per env: zero rows appended, or unwritten ones cut.
    Sampling reads only written rows, so a grown replay draws the same windows as before (an extended run)."""
    if capacity < int(replay.size):
        raise ValueError(f"cannot resize a replay holding {int(replay.size)} rows to capacity {capacity}")
    rows = replay.action.shape[0]
    if capacity == rows:  # every resume passes here: no copy of a full-size (Atari: gigabytes) replay
        return replay

    def fit(buf):
        if capacity <= rows:
            return buf[:capacity]
        return jnp.concatenate([buf, jnp.zeros((capacity - rows, *buf.shape[1:]), buf.dtype)])

    return replay.replace(**{name: fit(getattr(replay, name))
                             for name in ("obs", "action", "reward", "term", "first", "trained", "imagined")})


def add(replay: Replay, obs: jax.Array, action: jax.Array, reward: jax.Array, term: jax.Array,
        first: jax.Array) -> Replay:
    """Append one row: ``obs [E, *obs_shape]``, the rest ``[E]``. Writing past capacity is dropped."""
    chex.assert_equal_shape([action, reward, term, first])
    i = replay.size

    def put(buf, x):
        return jax.lax.dynamic_update_index_in_dim(buf, x.astype(buf.dtype), i, 0)

    return replay.replace(obs=put(replay.obs, obs), action=put(replay.action, action),
                          reward=put(replay.reward, reward), term=put(replay.term, term),
                          first=put(replay.first, first), size=jnp.minimum(i + 1, replay.action.shape[0]))


def start_logits(replay: Replay, length: int, sampler: str, temperature: float, imagination: bool) -> jax.Array:
    """Unnormalised log-probabilities of every ``(start, env)`` ``[capacity, E]``; invalid ones ``-inf``."""
    capacity = replay.action.shape[0]
    valid = (jnp.arange(capacity) + length <= replay.size)[:, None]
    if sampler == "uniform":
        logits = jnp.zeros(replay.action.shape, jnp.float32)
    elif sampler == "dfs":
        count = jnp.maximum(0, replay.imagined - replay.trained) if imagination else replay.trained
        logits = -count.astype(jnp.float32) / temperature
    else:
        raise ValueError(f"unknown sampler {sampler!r}; valid: ['uniform', 'dfs']")
    return jnp.where(valid, logits, -jnp.inf)


def sample(replay: Replay, key: jax.Array, batch: int, length: int, sampler: str = "uniform",
           temperature: float = 10.0, imagination: bool = False) -> tuple[Replay, dict]:
    """Draw ``batch`` windows of ``length`` rows; returns the replay with its counts updated and
    ``{obs [T, B, *obs_shape], action, reward, term, first [T, B]}``."""
    logits = start_logits(replay, length, sampler, temperature, imagination).reshape(-1)
    # inverse-CDF draws: categorical(shape=(batch,)) would draw batch x capacity x E Gumbel numbers
    # (1024 imagination starts over a 100k-row replay: ~0.1 G random numbers per update)
    flat = jax.random.choice(key, logits.shape[0], (batch,), p=jax.nn.softmax(logits))
    starts, envs = jnp.divmod(flat, replay.action.shape[1])
    rows = starts[None, :] + jnp.arange(length)[:, None]  # [T, B]
    window = {name: getattr(replay, name)[rows, envs[None, :]]
              for name in ("obs", "action", "reward", "term", "first")}
    counter = "imagined" if imagination else "trained"
    replay = replay.replace(**{counter: getattr(replay, counter).at[starts, envs].add(1)})
    return replay, window
