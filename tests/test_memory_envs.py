"""The S4WM memory environments: the cue decides the reward, keys open only their doors, walls hold, and
everything jits and vmaps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import envs
from ssmrl.envs.memory import DistractingMemory, FourRooms, MultiDoorsKeys


def _episode(env, params, key, actions):
    """Frames, rewards and terminations of one episode under ``actions [T]`` (jitted, scanned)."""

    def run(key):
        obs, state = env.reset(key, params)

        def body(carry, inputs):
            obs, state = carry
            k, a = inputs
            next_obs, state, reward, term, trunc, _ = env.step(k, state, a, params)
            return (next_obs, state), (obs, reward, term, trunc)

        return jax.lax.scan(body, (obs, state), (jax.random.split(key, len(actions)), actions))[1]

    return jax.jit(run)(key)


def test_registered_with_image_observations():
    for name in ("memory/DistractingMemory", "memory/MultiDoorsKeys", "memory/FourRooms"):
        env, params = envs.make(name)
        obs, _ = env.reset(jax.random.PRNGKey(0), params)
        assert obs.dtype == jnp.uint8 and obs.shape == env.observation_space(params).shape


def test_distracting_memory_cue_decides_reward():
    env = DistractingMemory(width=5, num_colors=3)
    params = env.default_params
    keys = jax.random.split(jax.random.PRNGKey(0), 24)
    cues = jax.vmap(lambda k: env.reset(k, params)[1].cue)(keys)
    assert len(set(np.asarray(cues).tolist())) == 3
    for choice in range(3):
        actions = jnp.full((env.episode_length,), choice, jnp.int32)
        _, reward, term, trunc = jax.vmap(lambda k: _episode(env, params, k, actions))(keys)
        np.testing.assert_array_equal(np.asarray(reward[:, -1]), np.asarray(cues == choice, np.float32))
        assert not np.asarray(reward[:, :-1]).any()
        assert np.asarray(term[:, -1]).all() and not np.asarray(term[:, :-1]).any() and not np.asarray(trunc).any()


def test_distracting_memory_cue_is_seen_only_first():
    """Two episodes alike in everything but the cue differ in the first frame only."""
    env = DistractingMemory(width=4, num_colors=2)
    params = env.default_params
    _, state = env.reset(jax.random.PRNGKey(0), params)
    keys = jax.random.split(jax.random.PRNGKey(1), env.episode_length - 1)
    frames = []
    for cue in (0, 1):
        s = state.replace(cue=jnp.int32(cue))
        episode = [env.render(s)]
        for k in keys:
            _, s, *_ = env.step_env(k, s, 1, params)
            episode.append(env.render(s))
        frames.append(np.asarray(jnp.stack(episode)))
    assert (frames[0][0] != frames[1][0]).any()
    np.testing.assert_array_equal(frames[0][1:], frames[1][1:])


def test_doors_open_only_for_taken_keys():
    env = MultiDoorsKeys(num_keys=3, width=2, num_distractors=0)
    params = env.default_params
    K, start = env.num_keys, env.doors_start
    actions = np.ones(env.episode_length, np.int32)  # try every door
    actions[:K] = [1, 0, 1]  # take keys 0 and 2, leave key 1
    obs, reward, term, _ = _episode(env, params, jax.random.PRNGKey(0), jnp.asarray(actions))
    reward = np.asarray(reward)
    door_steps = start + 2 * np.arange(K)
    np.testing.assert_array_equal(reward[door_steps], [1.0, 0.0, 1.0])
    assert reward.sum() == 2.0 and bool(np.asarray(term)[-1])
    obs = np.asarray(obs)
    outcome = door_steps + 1
    above_bar = slice(0, -1)  # the progress bar on the bottom row moves every frame
    assert (obs[outcome[0], above_bar] != obs[door_steps[0], above_bar]).any(), "an opened door looks open"
    np.testing.assert_array_equal(obs[outcome[1], above_bar], obs[door_steps[1], above_bar])  # locked: closed
    mask = np.asarray(env.frame_mask())
    assert mask.sum() == K and mask[outcome].all()


def test_doors_stay_closed_when_not_tried():
    env = MultiDoorsKeys(num_keys=2, width=1)
    actions = np.zeros(env.episode_length, np.int32)
    actions[:2] = 1
    _, reward, _, _ = _episode(env, env.default_params, jax.random.PRNGKey(1), jnp.asarray(actions))
    assert not np.asarray(reward).any()


def test_four_rooms_walls_block_and_rooms_keep_colours():
    env = FourRooms(grid=9, view=3, cell=1, length=40)
    params = env.default_params
    _, state = env.reset(jax.random.PRNGKey(0), params)
    state = state.replace(position=jnp.array([1, 1], jnp.int32))
    _, up, *_ = env.step(jax.random.PRNGKey(1), state, 0, params)  # into the outer wall
    np.testing.assert_array_equal(np.asarray(up.position), [1, 1])
    _, down, *_ = env.step(jax.random.PRNGKey(1), state, 1, params)
    np.testing.assert_array_equal(np.asarray(down.position), [2, 1])
    obs = np.asarray(env.render(down))
    assert obs.shape == (3, 3, 3)
    np.testing.assert_array_equal(obs[1, 0], [128, 128, 128])  # the wall to the left
    floor = np.asarray(env.render(down.replace(position=jnp.array([2, 2], jnp.int32))))[1, 0]
    np.testing.assert_array_equal(floor, np.asarray(envs.memory.render.PALETTE)[int(down.colours[0])])
    with pytest.raises(ValueError, match="grid must be odd"):
        FourRooms(grid=8)


@pytest.mark.parametrize("cls, options", [(DistractingMemory, {"width": 0}), (MultiDoorsKeys, {"num_keys": -1}),
                                          (DistractingMemory, {"num_colors": 9})])
def test_bad_sizes_are_refused(cls, options):
    with pytest.raises(ValueError, match=next(iter(options))):
        cls(**options)
