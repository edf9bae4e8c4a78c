"""The classic POPGym games: registry names, spaces, jitted vmapped rollouts, return bounds and
optimal policies (which read the hidden state) reaching the maximum return.

One jitted rollout per static env: a few envs in parallel, some driven by the optimal policy and
the rest by random actions, for one full episode plus a little.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from ssmrl.envs.popgym import _common
from ssmrl.envs.popgym.cards import (
    Autoencode,
    Concentration,
    CountRecall,
    HigherLower,
    RepeatFirst,
    RepeatPrevious,
    count_recall_answers,
)
from ssmrl.envs.popgym.classic import ENVS, LEVELS, SETTINGS
from ssmrl.envs.popgym.control import (
    NoisyStatelessCartPole,
    StatelessCartPole,
    StatelessPendulum,
)

GAMES = list(SETTINGS)
TERMINATING = (RepeatPrevious, RepeatFirst, Autoencode, CountRecall, HigherLower)
CONTROL = (StatelessCartPole, StatelessPendulum)  # noisy variants subclass these
N_OPT, N_RAND = 2, 3  # envs per rollout driven by the optimal policy / by random actions


# ----------------------------------------------------------------------------- optimal policies
def _repeat_previous(env, s):
    return s.history[(s.time + 1) % env.k]


def _repeat_first(env, s):
    return s.first


def _autoencode(env, s):
    n = env.num_cards
    return s.cards[jnp.clip(2 * n - 2 - s.time, 0, n - 1)]


def _count_recall(env, s):
    return s.counts[s.query]


def _concentration(env, s):
    # Perfect memory (the layout is dealt lazily, so no policy can know unrevealed cards):
    # flip a known pair if there is one, else a fresh card; then its known partner if any.
    pos = jnp.arange(env.num_cards)
    known_down = (s.layout >= 0) & ~s.face_up
    known_types = jnp.where(known_down, s.layout, 0)
    per_type = jnp.zeros(env.num_types, jnp.int32).at[known_types].add(known_down)
    in_pair = known_down & (per_type[jnp.maximum(s.layout, 0)] >= 2)
    fresh = s.layout < 0
    first = jnp.where(in_pair.any(), jnp.argmax(in_pair), jnp.argmax(fresh))
    partner = known_down & (pos != s.first) & (s.layout == s.layout[jnp.maximum(s.first, 0)])
    second = jnp.where(partner.any(), jnp.argmax(partner), jnp.argmax(fresh & (pos != s.first)))
    return jnp.where(s.first < 0, first, second)


def _cartpole(env, s):
    # A linear controller on the true (hidden) state.
    return (s.theta + 0.5 * s.theta_dot + 0.05 * s.x + 0.2 * s.x_dot > 0).astype(jnp.int32)


OPTIMAL = {
    RepeatPrevious: _repeat_previous,
    RepeatFirst: _repeat_first,
    Autoencode: _autoencode,
    CountRecall: _count_recall,
    Concentration: _concentration,
    StatelessCartPole: _cartpole,
}


def _policy(env):
    for cls, fn in OPTIMAL.items():
        if type(env) is cls:
            return fn
    return None


@partial(jax.jit, static_argnums=(0, 3))
def _rollout(env, params, key, steps):
    """N_OPT + N_RAND envs for ``steps`` steps.

    Returns the reset observations and, per step: obs, reward, term, trunc, running return and
    the final observation.
    """
    n = N_OPT + N_RAND
    optimal = jnp.arange(n) < N_OPT
    k_reset, k_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, n), params)
    policy = _policy(env)
    space = env.action_space(params)

    def body(carry, k):
        state, ret = carry
        k_act, k_step = jax.random.split(k)
        action = jax.vmap(space.sample)(jax.random.split(k_act, n))
        if policy is not None:
            best = jax.vmap(partial(policy, env))(state).astype(action.dtype)
            action = jnp.where(optimal, best, action)
        obs, state, reward, term, trunc, info = jax.vmap(env.step, (0, 0, 0, None))(
            jax.random.split(k_step, n), state, action, params
        )
        ret = ret + reward
        out = (obs, reward, term, trunc, ret, info["final_observation"])
        return (state, jnp.where(term | trunc, 0.0, ret)), out

    _, out = jax.lax.scan(body, (state, jnp.zeros(n)), jax.random.split(k_run, steps))
    return obs, out


def _static(env, params):
    """Envs whose difficulty lives only in the params share one compiled rollout."""
    if isinstance(env, CONTROL):
        return type(env)(), 610
    return env, env.max_episode_length + 2


# ----------------------------------------------------------------------------- tests
def test_names():
    expected = {f"{g}{lvl}" for g in GAMES for lvl in LEVELS}
    assert len(GAMES) == 11 and set(ENVS) == expected and len(ENVS) == 33


ACTIONS = {  # POPGym's action spaces (Box for the pendulum's torque)
    "Autoencode": (4, 4, 4),
    "Concentration": (52, 104, 52),
    "CountRecall": (27, 27, 17),  # one action per possible count 0..N/types
    "HigherLower": (2, 2, 2),
    "MultiarmedBandit": (10, 20, 30),
    "RepeatFirst": (4, 4, 4),
    "RepeatPrevious": (4, 4, 4),
    "StatelessCartPole": (2, 2, 2),
    "NoisyStatelessCartPole": (2, 2, 2),
}
OBS_DIMS = {  # gymnasium.spaces.flatten of POPGym's observation spaces
    "Autoencode": (6, 6, 6),
    "Concentration": (156, 312, 728),
    "CountRecall": (4, 8, 26),
    "HigherLower": (13, 13, 13),
    "MultiarmedBandit": (2, 2, 2),
    "RepeatFirst": (4, 4, 4),
    "RepeatPrevious": (4, 4, 4),
}
LENGTHS = {  # POPGym's episode lengths
    "Autoencode": (103, 207, 311),
    "Concentration": (104, 208, 104),
    "CountRecall": (51, 103, 207),
    "HigherLower": (51, 103, 155),
    "MultiarmedBandit": (200, 400, 600),
    "RepeatFirst": (51, 415, 831),
    "RepeatPrevious": (51, 103, 155),
    "StatelessCartPole": (200, 400, 600),
    "NoisyStatelessCartPole": (200, 200, 200),
    "StatelessPendulum": (200, 150, 100),
    "NoisyStatelessPendulum": (200, 200, 200),
}


@pytest.mark.parametrize("game", GAMES)
def test_spaces(game):
    for i, level in enumerate(LEVELS):
        env, params = ENVS[game + level]()
        a_space, o_space = env.action_space(params), env.observation_space(params)
        assert env.max_episode_length == LENGTHS[game][i]
        assert isinstance(o_space, spaces.Box) and o_space.dtype == jnp.float32
        if game in ACTIONS:
            assert isinstance(a_space, spaces.Discrete) and a_space.n == ACTIONS[game][i]
        else:
            assert isinstance(a_space, spaces.Box) and a_space.shape == (1,)
            assert float(a_space.low) == -2.0 and float(a_space.high) == 2.0
        assert o_space.shape == (OBS_DIMS.get(game, (2, 2, 2))[i],)


@pytest.mark.parametrize("game", GAMES)
def test_rollout(game):
    cls = SETTINGS[game][0]
    for i, level in enumerate(LEVELS):
        env, params = ENVS[game + level]()
        static_env, steps = _static(env, params)
        obs0, (obs, rew, term, trunc, ret, final_obs) = jax.device_get(
            _rollout(static_env, params, jax.random.PRNGKey(i), steps)
        )
        o_space = env.observation_space(params)
        low, high = np.asarray(o_space.low), np.asarray(o_space.high)
        for o in (obs0, obs, final_obs):
            assert o.dtype == np.float32 and o.shape[-1:] == o_space.shape
            assert np.all(o >= low - 1e-6) and np.all(o <= high + 1e-6)
        assert rew.dtype == np.float32 and term.dtype == np.bool_ and trunc.dtype == np.bool_
        # Returns (running, hence final too) stay in [-1, 1].
        assert np.all(np.abs(ret) <= 1 + 1e-4), (game, level, np.abs(ret).max())
        done = term | trunc
        assert done.any(axis=0).all()
        length = env.max_episode_length
        if cls is not StatelessCartPole and cls is not NoisyStatelessCartPole:
            # Fixed-length episodes (Concentration under random play too): first end at L.
            random_envs = slice(N_OPT, None) if cls is Concentration else slice(None)
            assert np.all(done[: length - 1, random_envs] == 0)
            assert np.all(done[length - 1, random_envs])
            ends_by_termination = cls in TERMINATING
            assert np.all(term[length - 1, random_envs] == ends_by_termination)
            assert np.all(trunc[length - 1, random_envs] != ends_by_termination)
        if _policy(static_env) is not None:
            first_end = done[:, :N_OPT].argmax(axis=0)
            best = ret[first_end, np.arange(N_OPT)]
            if cls is Concentration:  # perfect memory clears the board and beats random play
                assert term[first_end, np.arange(N_OPT)].all()
                assert np.all(best > 0) and np.all(best > ret[length - 1, N_OPT:].max())
            else:  # the maximum return
                np.testing.assert_allclose(best, 1.0, atol=1e-4, err_msg=f"{game}{level}")


def test_deal_is_a_shuffled_deck():
    counts = _common.full_deck_counts(13, 104)

    @jax.jit
    def deal_all(key):
        def body(rem, k):
            card, rem = _common.deal(k, rem)
            return rem, card

        return jax.lax.scan(body, counts, jax.random.split(key, 104))

    rem, cards = deal_all(jax.random.PRNGKey(0))
    assert int(rem.sum()) == 0
    np.testing.assert_array_equal(np.bincount(np.asarray(cards), minlength=13), 8)


@pytest.mark.parametrize("level", ["Easy", "Medium"])
def test_count_recall_answers_rebuilt_from_the_frames_are_what_pays(level):
    """Over more than an episode (auto-reset included), with the count answered half the time and random
    actions otherwise, the rebuilt answer is paid exactly when taken, and the rebuilt counts are the env's."""
    env, params = ENVS["CountRecall" + level]()
    n, steps = 4, env.max_episode_length + 20

    @jax.jit
    def play(key):
        k_reset, k_run = jax.random.split(key)
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, n), params)

        def body(carry, k):
            obs, state, first = carry
            k_coin, k_act, k_step = jax.random.split(k, 3)
            count = jax.vmap(partial(_count_recall, env))(state)
            action = jnp.where(jax.random.bernoulli(k_coin, 0.5, (n,)), count,
                               jax.random.randint(k_act, (n,), 0, env.max_card_count + 1))
            new_obs, new_state, reward, term, trunc, _ = jax.vmap(env.step, (0, 0, 0, None))(
                jax.random.split(k_step, n), state, action, params)
            return (new_obs, new_state, term | trunc), (obs, first, action, reward, state.counts)

        _, out = jax.lax.scan(body, (obs, state, jnp.ones(n, bool)), jax.random.split(k_run, steps))
        return out

    obs, first, action, reward, counts = play(jax.random.PRNGKey(3))
    answer, dealt = count_recall_answers(obs, first)
    assert first[1:].any()  # an episode ended inside the rollout
    np.testing.assert_array_equal(dealt, counts)
    paid = np.asarray(reward > 0)
    np.testing.assert_array_equal(np.asarray(action == answer), paid)
    assert 0.4 < paid.mean() < 0.7
