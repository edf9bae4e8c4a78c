"""POPGym card games in pure JAX (rules as in POPGym, Morad et al. 2023).

Each deck has 52 cards (13 ranks x 4 suits, two colours). Cards are dealt from a
uniformly shuffled deck (see ``_common.deal``). Observations are POPGym's discrete observations
flattened the way ``gymnasium.spaces.flatten`` does it: one-hot per discrete part, concatenated.
``N`` below is the number of cards, ``t`` counts steps from 0.

- RepeatPrevious(num_decks, k): the reset deals a card and shows its suit; every step deals the
  next one. From the k-th step on, the agent must name the suit of the card shown k-1 steps
  before the current one (the k-th most recent card): +-1/(N-k). Ends (terminated) when the deck
  is empty, after N-1 steps. Easy 1 deck k=4, Medium 2 decks k=32, Hard 3 decks k=64.
- RepeatFirst(num_decks): as RepeatPrevious, but the answer is always the suit of the first
  card: +-1/(N-1) at each of the N-1 steps. Easy 1, Medium 8, Hard 16 decks.
- Autoencode(num_decks): watch phase: the N cards are shown one by one (observation = mode flag
  + suit; the last card already comes with the mode flag switched to "play"); the agent's
  actions are ignored, reward 0. Play phase: the agent names the suits in reverse order, +-1/N
  each; the play observation is (play, suit 0). N-1 + N = 2N-1 steps. 1 / 2 / 3 decks.
- CountRecall(num_decks, deck_type): two independently shuffled decks; the reset and every step
  deal a value card and a query card (observation = both types). The agent must answer how many
  value cards of the observed query card's type it has been shown so far (the one in the same
  observation included), one action per possible count (0 .. N/types): +-1/(N-1). N-1 steps.
  Easy 1 deck colours (2 types), Medium 2 decks suits (4 types), Hard 4 decks ranks (13 types).
- HigherLower(num_decks): shows a card's rank; the agent guesses whether the next card is
  higher (action 0) or lower (action 1): +1/N if right, -1/N if wrong, 0 on equal ranks.
  N-1 steps. 1 / 2 / 3 decks.
- Concentration(num_decks, deck_type): N shuffled face-down cards in a row (dealt lazily, see
  the class); each step flips one (action = position). The observation shows, per position,
  its type (face-up cards and the cards flipped this turn) or "face down". A turn is two flips:
  a matching pair (same type, different positions) stays face up, +1/(N/2); a mismatch costs
  -2/L; flipping a face-up card costs -1/L per flipped card of the turn and ends the turn.
  L = ceil(2N - N/(2N-1)) is the episode cap (truncation); all cards face up terminates.
  Easy 1 deck colours, Medium 2 decks colours, Hard 1 deck ranks.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from ssmrl.envs.popgym._common import (
    DECK_SIZE,
    NUM_COLORS,
    NUM_RANKS,
    NUM_SUITS,
    PopGymEnv,
    deal,
    deal_uniform,
    full_deck_counts,
    one_hot,
)

_DECK_TYPES = {"colors": NUM_COLORS, "suits": NUM_SUITS, "ranks": NUM_RANKS}


def _card_obs_space(n: int) -> spaces.Box:
    return spaces.Box(0.0, 1.0, (n,), jnp.float32)


# --------------------------------------------------------------------------- RepeatPrevious
@struct.dataclass
class RepeatPreviousState:
    time: int
    remaining: jax.Array  # (4,) cards left per suit
    history: jax.Array  # (k,) ring buffer: suit of card i at slot i % k


class RepeatPrevious(PopGymEnv):
    def __init__(self, num_decks: int = 1, k: int = 4):
        super().__init__()
        self.num_decks, self.k = num_decks, k
        self.num_cards = DECK_SIZE * num_decks
        assert self.num_cards > k
        self.max_episode_length = self.num_cards - 1
        # Episodes always end by termination; the cap is one step beyond and never fires.
        self.max_steps = self.max_episode_length + 1

    def _config(self):
        return (self.num_decks, self.k)

    def reset_env(self, key, params):
        card, remaining = deal(key, full_deck_counts(NUM_SUITS, self.num_cards))
        history = jnp.zeros((self.k,), jnp.int32).at[0].set(card)
        return one_hot(card, NUM_SUITS), RepeatPreviousState(0, remaining, history)

    def step_env(self, key, state, action, params):
        t = state.time
        slot = (t + 1) % self.k  # slot of card t+1-k, about to be overwritten by card t+1
        here = jnp.arange(self.k) == slot
        target = jnp.sum(jnp.where(here, state.history, 0))
        scale = 1.0 / (self.num_cards - self.k)
        reward = jnp.where(action == target, scale, -scale)
        reward = jnp.where(t + 1 >= self.k, reward, 0.0).astype(jnp.float32)
        card, remaining = deal(key, state.remaining)
        history = jnp.where(here, card, state.history)
        new = RepeatPreviousState(t + 1, remaining, history)
        terminated = new.time >= self.num_cards - 1
        return one_hot(card, NUM_SUITS), new, reward, terminated, {}

    def action_space(self, params=None):
        return spaces.Discrete(NUM_SUITS)

    def observation_space(self, params=None):
        return _card_obs_space(NUM_SUITS)


# --------------------------------------------------------------------------- RepeatFirst
@struct.dataclass
class RepeatFirstState:
    time: int
    remaining: jax.Array  # (4,)
    first: jax.Array  # suit of the first card


class RepeatFirst(PopGymEnv):
    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = num_decks
        self.num_cards = DECK_SIZE * num_decks
        self.max_episode_length = self.num_cards - 1
        self.max_steps = self.max_episode_length + 1

    def _config(self):
        return (self.num_decks,)

    def reset_env(self, key, params):
        card, remaining = deal(key, full_deck_counts(NUM_SUITS, self.num_cards))
        return one_hot(card, NUM_SUITS), RepeatFirstState(0, remaining, card)

    def step_env(self, key, state, action, params):
        scale = 1.0 / (self.num_cards - 1)
        reward = jnp.where(action == state.first, scale, -scale).astype(jnp.float32)
        card, remaining = deal(key, state.remaining)
        new = RepeatFirstState(state.time + 1, remaining, state.first)
        terminated = new.time >= self.num_cards - 1
        return one_hot(card, NUM_SUITS), new, reward, terminated, {}

    def action_space(self, params=None):
        return spaces.Discrete(NUM_SUITS)

    def observation_space(self, params=None):
        return _card_obs_space(NUM_SUITS)


# --------------------------------------------------------------------------- Autoencode
@struct.dataclass
class AutoencodeState:
    time: int
    remaining: jax.Array  # (4,)
    cards: jax.Array  # (N,) suits in dealing order


class Autoencode(PopGymEnv):
    """Observation: one-hot mode (index 0 = play, 1 = watch) then one-hot suit."""

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = num_decks
        self.num_cards = DECK_SIZE * num_decks
        self.max_episode_length = 2 * self.num_cards - 1
        self.max_steps = self.max_episode_length + 1

    def _config(self):
        return (self.num_decks,)

    @staticmethod
    def _obs(play, card):
        return jnp.concatenate([one_hot(jnp.where(play, 0, 1), 2), one_hot(card, NUM_SUITS)])

    def reset_env(self, key, params):
        card, remaining = deal(key, full_deck_counts(NUM_SUITS, self.num_cards))
        cards = jnp.zeros((self.num_cards,), jnp.int32).at[0].set(card)
        return self._obs(False, card), AutoencodeState(0, remaining, cards)

    def step_env(self, key, state, action, params):
        n, t = self.num_cards, state.time
        positions = jnp.arange(n)
        watching = t < n - 1
        # Play: the card to name at step t is card 2N-2-t (reverse order).
        target = jnp.sum(jnp.where(positions == 2 * n - 2 - t, state.cards, 0))
        scale = 1.0 / n
        reward = jnp.where(action == target, scale, -scale)
        reward = jnp.where(watching, 0.0, reward).astype(jnp.float32)
        card, remaining = deal(key, state.remaining)
        cards = jnp.where(watching & (positions == t + 1), card, state.cards)
        remaining = jnp.where(watching, remaining, state.remaining)
        new = AutoencodeState(t + 1, remaining, cards)
        play = new.time >= n - 1
        obs = self._obs(play, jnp.where(watching, card, 0))
        terminated = new.time >= 2 * n - 1
        return obs, new, reward, terminated, {}

    def action_space(self, params=None):
        return spaces.Discrete(NUM_SUITS)

    def observation_space(self, params=None):
        return _card_obs_space(2 + NUM_SUITS)


# --------------------------------------------------------------------------- CountRecall
@struct.dataclass
class CountRecallState:
    time: int
    value_remaining: jax.Array  # (types,)
    query_remaining: jax.Array  # (types,)
    counts: jax.Array  # (types,) value cards seen per type
    query: jax.Array  # type of the current query card


class CountRecall(PopGymEnv):
    """Observation: one-hot dealt value card type, then one-hot query card type."""

    def __init__(self, num_decks: int = 1, deck_type: str = "colors"):
        super().__init__()
        self.num_decks, self.deck_type = num_decks, deck_type
        self.num_types = _DECK_TYPES[deck_type]
        self.num_cards = DECK_SIZE * num_decks
        self.max_card_count = self.num_cards // self.num_types
        self.max_episode_length = self.num_cards - 1
        self.max_steps = self.max_episode_length + 1

    def _config(self):
        return (self.num_decks, self.deck_type)

    def _obs(self, value, query):
        return jnp.concatenate([one_hot(value, self.num_types), one_hot(query, self.num_types)])

    def reset_env(self, key, params):
        u = jax.random.uniform(key, (2,))
        deck = full_deck_counts(self.num_types, self.num_cards)
        value, value_remaining = deal_uniform(u[0], deck)
        query, query_remaining = deal_uniform(u[1], deck)
        counts = one_hot(value, self.num_types).astype(jnp.int32)
        state = CountRecallState(0, value_remaining, query_remaining, counts, query)
        return self._obs(value, query), state

    def step_env(self, key, state, action, params):
        types = jnp.arange(self.num_types)
        prev_count = jnp.sum(jnp.where(types == state.query, state.counts, 0))
        u = jax.random.uniform(key, (2,))
        value, value_remaining = deal_uniform(u[0], state.value_remaining)
        query, query_remaining = deal_uniform(u[1], state.query_remaining)
        counts = state.counts + (types == value).astype(jnp.int32)
        scale = 1.0 / self.max_episode_length
        reward = jnp.where(action == prev_count, scale, -scale).astype(jnp.float32)
        new = CountRecallState(state.time + 1, value_remaining, query_remaining, counts, query)
        terminated = new.time >= self.num_cards - 1
        return self._obs(value, query), new, reward, terminated, {}

    def action_space(self, params=None):
        return spaces.Discrete(self.max_card_count + 1)

    def observation_space(self, params=None):
        return _card_obs_space(2 * self.num_types)


def count_recall_answers(obs: jax.Array, first: jax.Array) -> tuple[jax.Array, jax.Array]:
    """What pays in CountRecall, rebuilt from its frames (for probes of what an agent knows).

    ``obs [T, ..., 2 * types]`` (value one-hot, then query one-hot) and ``first [T, ...]`` (the frame starts an
    episode) give ``(answer [T, ...], dealt [T, ..., types])``: the action that frame t pays for (how many value
    cards of its query's type were dealt, its own included) and the value cards of each type dealt so far.
    """
    types = obs.shape[-1] // 2
    value, query = obs[..., :types].astype(jnp.int32), obs[..., types:].astype(jnp.int32)

    def deal_one(dealt, frame):
        value_t, first_t = frame
        dealt = jnp.where(first_t[..., None], 0, dealt) + value_t
        return dealt, dealt

    _, dealt = jax.lax.scan(deal_one, jnp.zeros(value.shape[1:], jnp.int32), (value, first))
    return jnp.sum(dealt * query, -1), dealt


# --------------------------------------------------------------------------- HigherLower
@struct.dataclass
class HigherLowerState:
    time: int
    remaining: jax.Array  # (13,)
    card: jax.Array  # rank of the card on the table


class HigherLower(PopGymEnv):
    """Action 0: the next card is higher; action 1: lower."""

    def __init__(self, num_decks: int = 1):
        super().__init__()
        self.num_decks = num_decks
        self.num_cards = DECK_SIZE * num_decks
        self.max_episode_length = self.num_cards - 1
        self.max_steps = self.max_episode_length + 1

    def _config(self):
        return (self.num_decks,)

    def reset_env(self, key, params):
        card, remaining = deal(key, full_deck_counts(NUM_RANKS, self.num_cards))
        return one_hot(card, NUM_RANKS), HigherLowerState(0, remaining, card)

    def step_env(self, key, state, action, params):
        card, remaining = deal(key, state.remaining)
        scale = 1.0 / self.num_cards
        right = (card > state.card) == (action == 0)
        reward = jnp.where(right, scale, -scale)
        reward = jnp.where(card == state.card, 0.0, reward).astype(jnp.float32)
        new = HigherLowerState(state.time + 1, remaining, card)
        terminated = new.time >= self.num_cards - 1
        return one_hot(card, NUM_RANKS), new, reward, terminated, {}

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params=None):
        return _card_obs_space(NUM_RANKS)


# --------------------------------------------------------------------------- Concentration
@struct.dataclass
class ConcentrationState:
    time: int
    layout: jax.Array  # (N,) type at each position once revealed, -1 while never flipped
    unseen: jax.Array  # (types,) cards not yet revealed, per type
    face_up: jax.Array  # (N,) bool, matched pairs
    first: jax.Array  # position flipped first this turn, -1 when none


class Concentration(PopGymEnv):
    """Observation: per position, one-hot of (type, or ``num_types`` = face down), flattened.

    The shuffled layout is dealt lazily: a position's type is drawn from the cards not yet
    revealed the first time it is flipped, which has exactly the law of a shuffled layout (the
    unrevealed positions are exchangeable) and makes the reset free of any permutation.
    """

    def __init__(self, num_decks: int = 1, deck_type: str = "colors"):
        super().__init__()
        assert deck_type in ("colors", "ranks"), "suits cannot be paired (13 per suit)"
        self.num_decks, self.deck_type = num_decks, deck_type
        self.num_types = _DECK_TYPES[deck_type]
        self.num_cards = n = DECK_SIZE * num_decks
        self.max_episode_length = math.ceil(2 * n - n / (2 * n - 1))
        self.max_steps = self.max_episode_length
        self.success_reward = 1.0 / (n // 2)
        self.failure_reward = -1.0 / self.max_episode_length

    def _config(self):
        return (self.num_decks, self.deck_type)

    def _obs(self, layout, shown):
        faces = jnp.where(shown, layout, self.num_types)
        eye = jnp.arange(self.num_types + 1, dtype=jnp.int32)
        return (faces[:, None] == eye[None, :]).astype(jnp.float32).reshape(-1)

    def reset_env(self, key, params):
        n = self.num_cards
        layout = jnp.full((n,), -1, jnp.int32)
        face_up = jnp.zeros((n,), bool)
        unseen = full_deck_counts(self.num_types, n)
        state = ConcentrationState(0, layout, unseen, face_up, jnp.int32(-1))
        return self._obs(layout, face_up), state

    def step_env(self, key, state, action, params):
        pos = jnp.arange(self.num_cards)
        flip = pos == action
        # Reveal the flipped card if it was never seen.
        known = jnp.sum(jnp.where(flip, state.layout, 0))
        fresh = jnp.any(flip & (state.layout < 0))
        dealt, unseen = deal(key, state.unseen)
        type_a = jnp.where(fresh, dealt, known)
        unseen = jnp.where(fresh, unseen, state.unseen)
        layout = jnp.where(flip, type_a, state.layout)

        has_first = state.first >= 0
        first_mask = has_first & (pos == state.first)
        already_up = jnp.any(flip & state.face_up)
        type_f = jnp.sum(jnp.where(first_mask, layout, 0))
        match = has_first & ~already_up & (type_a == type_f) & (action != state.first)
        turn_end = jnp.where(match, self.success_reward, 2 * self.failure_reward)
        reward = jnp.where(
            already_up,
            self.failure_reward * (1.0 + has_first),
            jnp.where(has_first, turn_end, 0.0),
        ).astype(jnp.float32)
        shown = state.face_up | flip | first_mask
        face_up = jnp.where(match, shown, state.face_up)
        first = jnp.where(has_first | already_up, -1, action).astype(jnp.int32)
        new = ConcentrationState(state.time + 1, layout, unseen, face_up, first)
        terminated = match & jnp.all(face_up)
        return self._obs(layout, shown), new, reward, terminated, {}

    def action_space(self, params=None):
        return spaces.Discrete(self.num_cards)

    def observation_space(self, params=None):
        return _card_obs_space(self.num_cards * (self.num_types + 1))
