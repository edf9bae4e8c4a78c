"""The projected meta-RL environment (envs/meta) and the brax adapter (envs/brax_adapter)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import envs
from ssmrl.envs.meta import DEFAULT_HELDOUT, DEFAULT_TRAIN


def _rollout(env, params, state, actions_fn, steps: int, key):
    """Scan ``steps`` meta steps; ``actions_fn(state) -> action``. Returns stacked (reward, done, info)."""

    def body(carry, k):
        state = carry
        obs, state, reward, terminated, truncated, info = env.step(k, state, actions_fn(state), params)
        return state, (obs, reward, terminated, truncated, info)

    return jax.lax.scan(body, state, jax.random.split(key, steps))


def test_reset_step_jit_vmap():
    env, params = envs.make("meta", trials=2, trial_steps=8)
    assert env.pool == DEFAULT_TRAIN
    n = 16
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(0), n), params)
    assert obs.shape == (n, env.obs_dim + 2) and obs.dtype == jnp.float32
    assert env.observation_space(params).shape == (env.obs_dim + 2,)
    assert env.action_space(params).shape == (env.act_dim,)
    assert np.shape(env.action_space(params).low) == (env.act_dim,)  # per-dimension bounds (PPO reshapes by them)
    np.testing.assert_array_equal(obs[:, -1], 1.0)  # trial-start flag
    np.testing.assert_array_equal(obs[:, -2], 0.0)  # no previous reward

    @jax.jit
    def run(state, key):
        def body(state, k):
            k_act, k_step = jax.random.split(k)
            action = jax.random.uniform(k_act, (n, env.act_dim), minval=-1, maxval=1)
            out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(k_step, n), state, action, params)
            return out[1], (out[0], out[2], out[3] | out[4], out[5]["trial"])
        return jax.lax.scan(body, state, jax.random.split(key, 40))

    state, (obs, reward, done, trial) = run(state, jax.random.key(1))
    assert obs.shape == (40, n, env.obs_dim + 2)
    assert bool(jnp.all(jnp.isfinite(obs))) and bool(jnp.all(jnp.isfinite(reward)))
    assert trial.dtype == jnp.int32 and int(trial.max()) <= 1
    assert bool(done.any())  # 2 trials of <= 8 steps end within 40 steps
    # Every trial's return lies in about [-1, 1] after normalisation.
    assert float(jnp.abs(reward).max()) <= 1.0


def test_trials_do_not_end_the_meta_episode():
    # MountainCar never reaches its goal in 5 steps: every trial ends at its 5-step cap.
    env, params = envs.make("meta", train=["MountainCar-v0"], heldout=["CartPole-v1"], trials=3, trial_steps=5)
    obs, state = env.reset(jax.random.key(0), params)
    state, (obs, reward, terminated, truncated, info) = _rollout(
        env, params, state, lambda s: jnp.zeros(env.act_dim), 17, jax.random.key(1))
    done = np.asarray(terminated | truncated)
    np.testing.assert_array_equal(np.flatnonzero(done), [14])  # only after the last trial
    assert not bool(terminated.any())  # ended by the step cap: truncated
    np.testing.assert_array_equal(info["trial"], [0] * 5 + [1] * 5 + [2] * 5 + [0, 0])
    np.testing.assert_array_equal(np.flatnonzero(info["trial_done"]), [4, 9, 14])
    # Trial-start flag on the first observation of each trial and of the next meta-episode.
    np.testing.assert_array_equal(np.flatnonzero(obs[:, -1]), [4, 9, 14])
    np.testing.assert_allclose(reward, -1.0 / 5)  # -1 per step / (s=1 * L=5)
    assert int(state.trial) == 0 and int(state.time) == 2  # a new meta-episode started
    # Observed previous reward r / s, carried across trial boundaries, zero at a meta-episode start.
    np.testing.assert_allclose(obs[:, -2], [-1.0] * 14 + [0.0] + [-1.0] * 2)
    # CartPole pushed one way falls over: trials end by base termination, the last one "terminated".
    env, params = envs.make("meta", train=["CartPole-v1"], heldout=["Acrobot-v1"], trials=2, trial_steps=200,
                            project_actions=False)
    _, state = env.reset(jax.random.key(2), params)
    _, (_, _, terminated, truncated, info) = _rollout(
        env, params, state, lambda s: jnp.array([1.0, -1.0, 0.0, 0.0]), 60, jax.random.key(3))
    ends = np.flatnonzero(info["trial_done"])
    assert len(ends) >= 2 and ends[0] < 30
    assert bool(terminated[ends[1]]) and not bool(truncated.any())
    assert not bool(terminated[ends[0]])


def _reset_on(env, params, name, seed=0):
    """A meta reset whose sampled base is ``name``."""
    for s in range(seed, seed + 100):
        obs, state = env.reset(jax.random.key(s), params)
        if env.pool[int(state.env_index)] == name:
            return obs, state
    raise AssertionError(name)


def test_projection_is_invertible():
    """A policy acting on the base env through pinv(action projection) gets the base env's return."""
    env, params = envs.make("meta", train=["CartPole-v1", "Pendulum-v1"], heldout=["Acrobot-v1"], trials=2,
                            trial_steps=100, act_dim=4)
    assert env.max_act == 2  # CartPole's 2 actions, Pendulum's 1 dimension: padded to 2

    # CartPole: a hand-written controller on the un-projected state.
    def cart_action(s):
        return (s.theta + 0.5 * s.theta_dot > 0).astype(jnp.int32)

    _, state = _reset_on(env, params, "CartPole-v1")
    pinv = jnp.linalg.pinv(state.act_proj[:2])  # [act_dim, 2], M[:2] @ pinv = I
    cols = pinv / jnp.abs(pinv).max(axis=0)  # scaled into the box; argmax(M a) is unchanged

    spec = env.specs[0]
    base0 = state.base_states[0]

    def direct(carry, k):
        s, alive, ret = carry
        _, s2, r, term, _ = spec.env.step_env(k, s, cart_action(s), spec.params)
        return (s2, alive & ~term, ret + jnp.where(alive, r, 0.0)), None

    (_, _, direct_return), _ = jax.lax.scan(direct, (base0, True, 0.0), jax.random.split(jax.random.key(5), 100))
    _, (_, reward, _, _, info) = _rollout(
        env, params, state, lambda s: cols[:, cart_action(s.base_states[0])], 100, jax.random.key(6))
    first = np.asarray(info["trial"]) == 0
    assert float(direct_return) > 20
    np.testing.assert_allclose(np.sum(np.asarray(info["base_reward"])[first]), float(direct_return))
    np.testing.assert_allclose(np.sum(np.asarray(reward)[first]), float(direct_return) / 100, rtol=1e-5)

    # Pendulum: a fixed torque sequence, recovered exactly through the pseudo-inverse.
    _, state = _reset_on(env, params, "Pendulum-v1")
    torques = 1.5 * jnp.sin(jnp.arange(50) / 4.0)  # within [-2, 2]
    m = state.act_proj[:1]
    agent_actions = jax.vmap(lambda u: (jnp.linalg.pinv(m) @ (u / 2.0)[None]))(torques)  # [50, act_dim]
    if float(jnp.abs(agent_actions).max()) > 1.0:  # rescale the sequence if pinv leaves the box
        torques = torques / float(jnp.abs(agent_actions).max())
        agent_actions = agent_actions / float(jnp.abs(agent_actions).max())
    spec = env.specs[1]

    def direct_p(s, inp):
        k, u = inp
        _, s2, r, _, _ = spec.env.step_env(k, s, u[None], spec.params)
        return s2, r

    _, direct_r = jax.lax.scan(direct_p, state.base_states[1], (jax.random.split(jax.random.key(7), 50), torques))

    def body(s, inp):
        k, a = inp
        _, s, _, _, _, info = env.step(k, s, a, params)
        return s, info["base_reward"]

    _, meta_r = jax.lax.scan(body, state, (jax.random.split(jax.random.key(8), 50), agent_actions))
    np.testing.assert_allclose(meta_r, direct_r, rtol=1e-4, atol=1e-4)


def test_pools_disjoint_and_heldout_never_sampled():
    assert not set(DEFAULT_TRAIN) & set(DEFAULT_HELDOUT)
    train_env, params = envs.make("meta")
    held_env, held_params = envs.make("meta", pool="heldout")
    assert held_env.pool == DEFAULT_HELDOUT and train_env.pool == DEFAULT_TRAIN
    keys = jax.random.split(jax.random.key(0), 1000)
    _, states = jax.vmap(train_env.reset, in_axes=(0, None))(keys, params)
    sampled = {train_env.pool[i] for i in np.asarray(states.env_index)}
    assert sampled == set(DEFAULT_TRAIN)  # every train base appears, nothing else can
    assert not sampled & set(DEFAULT_HELDOUT)
    _, states = jax.vmap(held_env.reset, in_axes=(0, None))(keys[:200], held_params)
    assert {held_env.pool[i] for i in np.asarray(states.env_index)} == set(DEFAULT_HELDOUT)


def test_projection_seeds():
    env, params = envs.make("meta", projection_seeds=3)
    keys = jax.random.split(jax.random.key(0), 64)
    _, s = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    train_set = {np.asarray(w).tobytes() for w in s.obs_proj}
    assert len(train_set) == 3
    env2, params2 = envs.make("meta", projection_seeds=3, projection_offset=3)
    _, s2 = jax.vmap(env2.reset, in_axes=(0, None))(keys, params2)
    new_set = {np.asarray(w).tobytes() for w in s2.obs_proj}
    assert len(new_set) == 3 and not train_set & new_set


def test_bad_names_error_clearly():
    with pytest.raises(ValueError, match="valid: .*CartPole-v1"):
        envs.make("meta", train=["CartPole-v1", "NoSuchEnv"])
    with pytest.raises(ValueError, match="disjoint.*CartPole-v1"):
        envs.make("meta", train=["CartPole-v1"], heldout=["CartPole-v1", "Acrobot-v1"])
    with pytest.raises(ValueError, match="valid"):
        envs.make("meta", pool="test")
    with pytest.raises(ValueError, match="act_dim"):
        envs.make("meta", train=["Acrobot-v1"], heldout=["CartPole-v1"], act_dim=2)


def test_brax_adapter_dtypes_stable():
    from ssmrl.envs.brax_adapter import BraxEnv

    env = BraxEnv("inverted_pendulum")
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    assert obs.dtype == jnp.float32 and obs.shape == (env.obs_size,)
    assert env.action_space(params).shape == (1,)

    def sig(tree):
        return jax.tree.map(lambda x: (x.dtype, x.shape, jax.typeof(x).weak_type), tree)

    step = jax.jit(env.step)
    action = jnp.array([0.5], jnp.float32)
    out1 = step(jax.random.key(1), state, action, params)
    out2 = step(jax.random.key(2), out1[1], action, params)
    assert sig(state) == sig(out1[1]) == sig(out2[1])
    assert step._cache_size() == 1  # the second step did not recompile
    assert out1[2].dtype == jnp.float32 and out1[3].dtype == jnp.bool_
    # Pushing one way topples the pendulum: brax's done becomes gymnax's terminated.
    s, terminated = out2[1], False
    for i in range(40):
        _, s, _, terminated, _, _ = step(jax.random.key(3 + i), s, jnp.array([1.0]), params)
        if bool(terminated):
            break
    assert bool(terminated)


def test_basis_actions_are_signed_unit_vectors_through_the_projection():
    env, params = envs.make("meta", train=("DeepSea-bsuite", "CartPole-v1"), heldout=("Catch-bsuite",), trials=2,
                            obs_dim=64, act_dim=2, project_obs=False, basis_actions=True)
    assert env.action_space(params).n == 4
    np.testing.assert_array_equal(env.agent_action(jnp.int32(1)), [0.0, 1.0])
    np.testing.assert_array_equal(env.agent_action(jnp.int32(3)), [-0.0, -1.0])
    _, state = env.reset(jax.random.key(0), params)
    for i in range(2):  # two-action bases: +e_k and -e_k always pick opposite base actions
        for k in range(2):
            plus = env.base_action(i, jnp.int32(k), state.act_proj)
            minus = env.base_action(i, jnp.int32(k + 2), state.act_proj)
            assert int(plus) + int(minus) == 1
    obs, state, reward, *_ = jax.jit(env.step)(jax.random.key(1), state, jnp.int32(3), params)
    assert obs.shape == (66,) and np.isfinite(float(reward))


def _trial_rewards_of_one_arm(fixed: bool, key: int) -> np.ndarray:
    """Pull the same projected action in every one-pull trial of ``SimpleBandit``: ``[trials]`` rewards."""
    env, params = envs.make("meta", train=("SimpleBandit-bsuite",), heldout=("GaussianBandit-misc",), trials=6,
                            trial_steps=1, obs_dim=4, act_dim=11, fixed_trial_start=fixed)
    _, state = env.reset(jax.random.key(key), params)
    state, (obs, reward, terminated, truncated, info) = _rollout(
        env, params, state, lambda s: jnp.full((env.act_dim,), 0.3), 6, jax.random.key(key + 100))
    np.testing.assert_array_equal(info["trial"], np.arange(6))
    assert bool(terminated[-1] | truncated[-1]) and not bool(jnp.any(terminated[:-1] | truncated[:-1]))
    return np.asarray(reward)


def test_fixed_trial_start_keeps_the_base_task_for_the_meta_episode():
    # SimpleBandit shuffles its 11 arm values at every reset: the same arm pays differently from trial to
    # trial unless every trial restarts from the meta-episode's first reset.
    fixed = [_trial_rewards_of_one_arm(True, k) for k in range(4)]
    for rewards in fixed:
        np.testing.assert_array_equal(rewards, rewards[0])
    assert len({float(r[0]) for r in fixed}) > 1  # ... and a new meta-episode draws a new task
    fresh = _trial_rewards_of_one_arm(False, 0)
    assert len(set(fresh.tolist())) > 1


def test_bandit_bases_build_with_their_observation_sizes():
    env, _ = envs.make("meta", train=("BernoulliBandit-misc", "SimpleBandit-bsuite"), heldout=("GaussianBandit-misc",),
                       trial_steps=1, act_dim=11)
    assert [s.obs_size for s in env.specs] == [4, 1]
    assert [s.act_size for s in env.specs] == [2, 11]
