"""How a world model rates policies against the env (agents/world_model/ratings.py), and the probe script that
reads a run with it (scripts/world_model_policy_probe.py), on Breakout-MinAtar, whose step is deterministic:
holding the paddle left or right loses the ball on step 6 of every episode, standing still scores. And whether
it sees the rewards of its replay (agents/world_model/reward_events.py, scripts/world_model_reward_events.py):
which window rows the table reads, and the script on the same tiny run; and whether a network of its own reads the
rewards from the replay's frames (scripts/reward_from_frames.py): which rows it trains and scores on, the script; and
whether its encoder and decoder alone draw the frames (scripts/world_model_autoencoder.py): what each bottleneck feeds
the decoder, the script; and how much of Pong's objects its frames draw (agents/world_model/drawn_objects.py) and
where it puts the agent's paddle (agents/world_model/paddle_response.py), and whether its state holds the paddle's row
(agents/world_model/state_probe.py)."""

import dataclasses
import os
import re
import runpy

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssmrl.agents.world_model import config as wmc
from ssmrl.agents.world_model import distributions as D
from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.action_response import (
    MEASURES,
    RETURNS,
    action_response,
    action_returns,
    paid_after_actions,
)
from ssmrl.agents.world_model.agent import build, init_params, open_loop_predictions
from ssmrl.agents.world_model.autoencoder import BOTTLENECKS, frame_autoencoder
from ssmrl.agents.world_model.drawn_objects import GAME_OBJECTS, drawn_shares, format_drawn, object_sums
from ssmrl.agents.world_model.moving_content import MEASURES as CONTENT
from ssmrl.agents.world_model.moving_content import moving_errors, moving_sums
from ssmrl.agents.world_model.networks import postprocess, preprocess
from ssmrl.agents.world_model.paddle_response import GAME_PADDLES, held_moves, paddle_response
from ssmrl.agents.world_model.ratings import env_ratings, imagined_ratings, policy_names
from ssmrl.agents.world_model.reward_events import (
    OUTCOMES,
    agreement_by_outcome,
    ahead_by_outcome,
    by_outcome,
    first_latent_agreement,
    replay_windows,
    window_length,
)
from ssmrl.agents.world_model.state_probe import (
    FEATURES,
    REFERENCES,
    WARMUP,
    make_state_probe,
    probe_scores,
    probe_windows,
    state_features,
)
from ssmrl.agents.world_model.world_model import MOVING
from ssmrl.envs.atari import pong
from ssmrl.experiment.world_model import open_world_model_run, run_world_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HORIZON, EPISODES = 8, 6
CONFIG = wmc.validate(wmc.small(
    env_name="Breakout-MinAtar", model="rssm", hidden=16, latent_groups=4, latent_classes=4, channels=(4, 8),
    mlp_hidden=16, ac_hidden=16, imag_batch=8, imag_context=3, horizon=4, batch_size=2, batch_length=8, prefill=40,
    train_every=40, updates_per_chunk=1, total_steps=120, eval_steps=20, eval_envs=2, video_context=4,
    video_horizon=4))


@pytest.fixture(scope="module")
def parts():
    return build(CONFIG)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """``(run_dir, summary)`` of CONFIG trained to its end."""
    run_dir = str(tmp_path_factory.mktemp("run") / "run")
    return run_dir, run_world_model(CONFIG, run_dir, progress=False)


def _script(name: str):
    return runpy.run_path(os.path.join(ROOT, "scripts", name), run_name="probe")["main"]


def test_env_ratings_count_what_a_plain_loop_counts(parts):
    params = init_params(parts, jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(3)
    first_obs, returns, steps = jax.jit(lambda p, k: env_ratings(parts, p, parts.env, parts.env_params, EPISODES,
                                                                 HORIZON, k))(params, key)
    A = parts.num_actions
    assert returns.shape == steps.shape == (A + 1, EPISODES) and first_obs.shape == (EPISODES, *parts.obs_shape)
    env, env_params = parts.env, parts.env_params
    reset_keys = jax.random.split(jax.random.split(key)[0], EPISODES)
    for action in range(A):
        for e in range(EPISODES):
            obs, state = env.reset(reset_keys[e], env_params)
            np.testing.assert_array_equal(obs, first_obs[e])
            total, taken = 0.0, 0
            for _ in range(HORIZON):
                _, state, reward, terminated, truncated, _ = env.step(jax.random.PRNGKey(0), state, action, env_params)
                total, taken = total + float(reward), taken + 1
                if terminated or truncated:
                    break
            assert (float(returns[action, e]), float(steps[action, e])) == (total, taken), (action, e)
    assert np.all(returns[1:A] == 0) and np.all(steps[1:A] == 6)  # the paddle held at a wall
    assert np.all((steps >= 1) & (steps <= HORIZON))

    model_returns, model_steps = jax.jit(lambda p, o, k: imagined_ratings(parts, p, o, HORIZON, k))(
        params, first_obs, jax.random.PRNGKey(4))
    assert model_returns.shape == model_steps.shape == (A + 1, EPISODES)
    assert np.all(np.isfinite(model_returns)) and np.all((model_steps >= 1) & (model_steps <= HORIZON + 1e-4))


def test_probe_script_reads_a_run(trained_run, tmp_path, capsys):
    run_dir, summary = trained_run
    main = _script("world_model_policy_probe.py")
    out = main([run_dir, "--episodes", "4", "--horizon", str(HORIZON), "--segments", "3"])
    assert out["checkpoint"] == CONFIG.num_chunks
    assert [s["env_steps"] for s in out["segments"]] == [[0, 40], [40, 80], [80, 120]]
    assert summary["env_steps"] == 120
    for row in out["segments"]:
        assert len(row["actions"]) == 3 and abs(sum(row["actions"]) - 1) < 1e-6
    assert list(out["ratings"]) == policy_names(3) == ["action 0", "action 1", "action 2", "actor"]
    assert out["ratings"]["action 1"]["env_return"] == 0 and out["ratings"]["action 1"]["env_steps"] == 6
    printed = capsys.readouterr().out
    assert "| actor |" in printed and "| env steps | action frequencies" in printed

    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing")])
    assert "run.json not found: not a run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([run_dir, "--horizon", "0"])
    assert "--horizon must be >= 1, got 0" in capsys.readouterr().err


def test_constant_policies_act_as_named(parts):
    """The imagined constant policies take their action at every step (the actor row samples)."""
    from ssmrl.agents.world_model.behavior import imagine

    params = init_params(parts, jax.random.PRNGKey(0))
    N = 3
    carry = parts.wm.initialize_carry(N)
    z0 = jax.nn.one_hot(jnp.zeros((N, CONFIG.latent_groups), int), CONFIG.latent_classes).reshape(N, -1)
    traj = imagine(parts.wm, params["wm"], lambda k, s: jnp.full(s.shape[:-1], 2, jnp.int32), carry, z0,
                   jnp.ones((N,), bool), 5, jax.random.PRNGKey(0))
    assert np.all(np.asarray(traj["actions"]) == 2)


def test_reward_event_windows_and_columns(parts):
    """Windows hold the rows they name; the ``imagined k`` column reads window row ``imag_context - 2 + k``
    (its first step rewards the start's own action), ``observed`` the rows before; means and correlations are
    those of the rows read."""
    C, H, T = CONFIG.imag_context, CONFIG.horizon, window_length(parts)
    assert T == C + H - 1
    replay = rb.init_replay(30, 2, parts.obs_shape, parts.obs_dtype)
    rows, envs = np.meshgrid(np.arange(30), np.arange(2), indexing="ij")
    replay = replay.replace(reward=jnp.asarray(rows * 10 + envs, jnp.float32), size=jnp.asarray(30))
    windows = replay_windows(replay, T, 5, 3)
    starts = np.linspace(5, 30 - T, 3).astype(int)
    expected = (starts[None, :, None] + np.arange(T)[:, None, None]) * 10 + np.arange(2)
    np.testing.assert_array_equal(windows["reward"], expected.reshape(T, 6))
    assert windows["obs"].shape == (T, 6, *parts.obs_shape)
    with pytest.raises(ValueError, match="no window of 6 rows starts at row 26 of a replay of 30 rows"):
        replay_windows(replay, T, 26, 3)

    N = 7
    paid = np.tile(np.array([-1.0, 0.0, 1.0, 0.0, 2.0, -3.0, 0.0]), (T, 1))
    position = np.tile(np.arange(T, dtype=float)[:, None], (1, N))
    table = by_outcome(parts, position, paid)
    assert list(table) == ["observed", "imagined 1", "imagined 2", "imagined 4"]
    assert table["observed"]["paid 0"] == (3 * (C - 1), np.mean(np.arange(C - 1)))
    for k in (1, 2, 4):
        assert table[f"imagined {k}"]["paid < 0"] == (2, C - 2 + k) and table[f"imagined {k}"]["paid > 0"][0] == 2
        assert table[f"imagined {k}"]["correlation"] is None  # the prediction does not vary within a column
    perfect = by_outcome(parts, paid, paid)
    assert all(abs(e["correlation"] - 1) < 1e-12 for e in perfect.values())
    assert perfect["imagined 1"]["paid < 0"] == (2, -2.0) and perfect["imagined 1"]["paid > 0"] == (2, 1.5)
    assert set(perfect["observed"]) == {*OUTCOMES, "correlation"}
    # a model with reward_ahead heads gets every imagined step they ask the state to foresee, up to the horizon
    ahead_parts = dataclasses.replace(parts, config=dataclasses.replace(parts.config, reward_ahead=2))
    assert list(by_outcome(ahead_parts, position, paid)) == ["observed", *(f"imagined {k}" for k in (1, 2, 3, 4))]


def test_first_latent_agreement_is_the_prior_after_the_context_against_the_next_posterior(parts):
    """The prior read after observing ``imag_context`` frames (imagination's first latent) against the posterior of
    the next real frame, observed from there: the share of groups whose most likely classes agree; grouped by
    what imagined steps 1 and 2 (window rows ``imag_context - 1`` and ``imag_context``) were paid."""
    C, T, B = CONFIG.imag_context, window_length(parts), 6
    wm, params = parts.wm, init_params(parts, jax.random.PRNGKey(0))["wm"]
    k_obs, k_action, k_first, key = jax.random.split(jax.random.PRNGKey(1), 4)
    obs = jax.random.bernoulli(k_obs, 0.3, (T, B, *parts.obs_shape)).astype(parts.obs_dtype)
    action = jax.random.randint(k_action, (T, B), 0, parts.num_actions)
    first = jax.random.bernoulli(k_first, 0.2, (T, B)).at[0].set(True)
    agreement = first_latent_agreement(parts, params, obs, action, first, C, key)

    keys = jax.random.split(key, C + 1)
    carry, _ = wm.apply(params, wm.initialize_carry(B), obs[:C], action[:C], first[:C], keys[:C], method="observe")
    prior = wm.apply(params, carry["h"], method="prior")  # as open_loop_predictions samples its first latent
    _, after = wm.apply(params, carry, obs[C:C + 1], action[C:C + 1], first[C:C + 1], keys[C:], method="observe")
    expected = np.mean(np.argmax(prior, -1) == np.argmax(after["post"][0], -1), -1)
    assert agreement.shape == (B,)
    np.testing.assert_allclose(agreement, expected, atol=1e-6)
    with pytest.raises(ValueError, match="windows of 3 rows hold no frame after a context of 3"):
        first_latent_agreement(parts, params, obs[:C], action[:C], first[:C], C, key)

    paid = np.zeros((T, 4))
    paid[C - 1] = [-1.0, 0.0, 1.0, 1.0]  # imagined step 1
    paid[C] = [0.0, -2.0, -2.0, 0.0]  # imagined step 2
    table = agreement_by_outcome(parts, np.array([0.25, 0.5, 0.75, 1.0]), paid)
    assert list(table) == ["imagined 1", "imagined 2"]
    assert [table["imagined 1"][o] for o in OUTCOMES] == [(1, 0.25), (1, 0.5), (2, 0.875)]
    assert [table["imagined 2"][o] for o in OUTCOMES] == [(2, 0.625), (2, 0.625), (0, None)]


def _jittered_model_and_windows(parts, B: int):
    """``(params, obs, action, first, key)``: the tiny model's world-model parameters jittered (the reward head starts
    at zero), ``B`` random windows of ``window_length`` rows, each starting an episode, and a key."""
    T = window_length(parts)
    params = init_params(parts, jax.random.PRNGKey(0))["wm"]
    leaves, tree = jax.tree_util.tree_flatten(params)
    noise = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = tree.unflatten([x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, noise)])
    k_obs, k_action, key = jax.random.split(jax.random.PRNGKey(2), 3)
    obs = jax.random.bernoulli(k_obs, 0.3, (T, B, *parts.obs_shape)).astype(parts.obs_dtype)
    action = jax.random.randint(k_action, (T, B), 0, parts.num_actions)
    first = jnp.zeros((T, B), bool).at[0].set(True)
    return params, obs, action, first, key


def test_action_response_holds_each_action_from_the_last_observed_step(parts):
    """Against a hand computation: the frames imagined with each action held from window row ``imag_context - 1``
    on, one key, their mean absolute difference over the action pairs; the recorded actions under a second key; the
    rewards' range over the held actions. A model blind to the actions (the sequence model's action inputs zeroed)
    answers them with nothing, while its sampling noise stays."""
    C, H, B, A = CONFIG.imag_context, CONFIG.horizon, 5, parts.num_actions
    params, obs, action, first, key = _jittered_model_and_windows(parts, B)
    measure = jax.jit(lambda p: action_response(parts, p, obs, action, first, key))
    response = np.asarray(measure(params))
    assert response.shape == (len(MEASURES), H - 1, B)

    k_same, k_other = jax.random.split(key)
    held = [open_loop_predictions(parts, params, obs, action.at[C - 1:].set(a), first, C, k_same) for a in range(A)]
    frames = [np.asarray(f[C:]) for f, _ in held]
    rewards = np.stack([np.asarray(parts.wm.reward_value(r))[C - 1:-1] for _, r in held])  # led to frames 1..H-1
    pairs = [np.abs(frames[a] - frames[b]).mean((2, 3, 4)) for a in range(A) for b in range(a + 1, A)]
    other = np.asarray(open_loop_predictions(parts, params, obs, action, first, C, k_other)[0][C:])
    recorded = np.asarray(open_loop_predictions(parts, params, obs, action, first, C, k_same)[0][C:])
    np.testing.assert_allclose(response[0], np.mean(pairs, 0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(response[1], np.abs(recorded - other).mean((2, 3, 4)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(response[2], rewards.max(0) - rewards.min(0), atol=1e-5)  # a difference of ~0.1s
    assert np.all(response[0] > 0) and np.all(response[2] > 0)

    L = CONFIG.latent_groups * CONFIG.latent_classes  # the sequence model's inputs: [z, one-hot action, first]
    kernel = params["params"]["sequence"]["in_proj"]["kernel"]
    blind = jax.tree_util.tree_map(lambda x: x, params)
    blind["params"]["sequence"]["in_proj"]["kernel"] = kernel.at[L:L + A].set(0.0)
    response = np.asarray(measure(blind))
    assert np.all(response[0] == 0) and np.all(response[2] == 0) and np.all(response[1] > 0)


def test_action_returns_sum_each_actions_imagined_rewards(parts):
    """Against a hand computation: the rewards predicted for imagined steps 1 .. H - 1 summed, with each action held
    from window row ``imag_context - 1`` on and with it at that row only, one key. A model blind to the actions
    rates them all alike, held or once."""
    C, B, A = CONFIG.imag_context, 5, parts.num_actions
    params, obs, action, first, key = _jittered_model_and_windows(parts, B)
    measure = jax.jit(lambda p: action_returns(parts, p, obs, action, first, key))
    returns = np.asarray(measure(params))
    assert returns.shape == (2, A, B)

    def summed(actions):
        logits = open_loop_predictions(parts, params, obs, actions, first, C, key)[1]
        return np.asarray(parts.wm.reward_value(logits))[C - 1:-1].sum(0)

    held = np.stack([summed(action.at[C - 1:].set(a)) for a in range(A)])
    once = np.stack([summed(action.at[C - 1].set(a)) for a in range(A)])
    np.testing.assert_allclose(returns, np.stack([held, once]), atol=1e-5)
    assert np.ptp(returns[0], 0).min() > 0 and not np.allclose(returns[0], returns[1])

    L = CONFIG.latent_groups * CONFIG.latent_classes  # the sequence model's inputs: [z, one-hot action, first]
    blind = jax.tree_util.tree_map(lambda x: x, params)
    blind["params"]["sequence"]["in_proj"]["kernel"] = params["params"]["sequence"]["in_proj"]["kernel"].at[
        L:L + A].set(0.0)
    returns = np.asarray(measure(blind))
    np.testing.assert_allclose(returns, np.broadcast_to(returns[:, :1], returns.shape), atol=1e-6)


def test_paid_after_actions_sums_what_each_action_was_paid_and_the_steps_after():
    """Over 3 steps: the rows that took each action whose next 2 rows start no episode, by hand."""
    action = np.array([[0], [1], [0], [1], [0], [1], [0]])
    reward = np.array([[0.0], [1.0], [0.0], [-1.0], [2.0], [0.0], [5.0]])
    first = np.zeros((7, 1), bool)
    first[4] = True  # rows 2 and 3 reach into the episode row 4 starts
    paid, rows = paid_after_actions(action, reward, first, 3, 3)
    # action 0: rows 0 (0 + 1 + 0) and 4 (2 + 0 + 5); action 1: row 1 (1 + 0 - 1); rows 5 and 6 have no 3 steps left
    assert rows.tolist() == [2, 1, 0]
    np.testing.assert_allclose(paid[:2], [4.0, 0.0])
    assert np.isnan(paid[2])


def test_paddle_row_reads_the_agents_paddle_and_a_smear_at_its_mass():
    """Pong's paddle reader on hand-made frames: a paddle on rows 30-33 reads 31.5, a background frame NaN, a
    paddle smeared evenly down its whole column the column's middle, and a ball left of the paddle's columns is not
    read."""
    frames = np.broadcast_to(np.asarray(pong.BACKGROUND, np.uint8), (3, 64, 64, 3)).copy()
    frames[0, 30:34, 56:58] = (92, 186, 92)
    frames[0, 50, 54:56] = 236  # the ball, beside the paddle's columns
    frames[2, 11:59, 56:58] = (120, 100, 60)
    rows = np.asarray(pong.paddle_row(frames))
    assert rows[0] == 31.5 and np.isnan(rows[1]) and rows[2] == pytest.approx(34.5)


def test_held_moves_compare_the_replays_down_and_up_runs():
    """Per k, the mean move over k rows whose k actions were all down, less that over all up; a run across an
    episode's start, or from an unread row, is left out; counts of each."""
    row = np.asarray([10.0, 12, 14, 13, 12, 20, 18, 18, np.nan, 5])[:, None]  # [N=10, E=1]
    action = np.asarray([1, 1, 0, 0, 2, 1, 2, 1, 0, 0])[:, None]  # up = 0, down = 1
    first = np.zeros((10, 1), bool)
    first[5] = True  # row 4's move to row 5 crosses an episode's start
    moves = held_moves(row, action, first, up=(0,), down=(1,), steps=2)
    # k=1: down from rows 0, 1, 5 (2, 2, -2; row 7's next row is unread); up from rows 2, 3 (-1, -1; row 8 is unread,
    # row 9 has no next row)
    np.testing.assert_allclose(moves[0], [2 / 3 - (-1), 3, 2])
    # k=2: down-down from row 0 (+4) only; up-up from row 2 (-2)
    np.testing.assert_allclose(moves[1], [4 - (-2), 1, 1])
    assert np.isnan(held_moves(row, action, first, up=(3,), down=(1,), steps=1)[0, 0])


def test_paddle_response_reads_the_recorded_and_held_actions_frames(parts):
    """Against a hand computation with a stand-in reader (a frame's mean first channel): the row error of the
    frames the recorded actions reconstruct and imagine, the real frames' move from the last observed one, and the
    down actions' reading less the up actions' with each held from the last observed step on, one key. A model blind
    to the actions gives 0 for the last."""
    C, T, B, A = CONFIG.imag_context, window_length(parts), 3, parts.num_actions
    params, obs, action, first, key = _jittered_model_and_windows(parts, B)

    def reader(frames):
        return jnp.asarray(frames, jnp.float32)[..., 0].mean((-1, -2))

    up, down = (0,), (1, 2)
    measure = jax.jit(lambda p: paddle_response(parts, p, obs, action, first, key, reader, up, down))
    got = np.asarray(measure(params))
    assert got.shape == (3, T, B)

    def rows(actions):
        frames, _ = open_loop_predictions(parts, params, obs, actions, first, C, key)
        return np.asarray(reader(postprocess(frames, parts.obs_dtype)))

    real = np.asarray(reader(obs))
    held = [rows(action.at[C - 1:].set(a)) for a in range(A)]
    np.testing.assert_allclose(got[0], np.abs(rows(action) - real), atol=1e-6)
    np.testing.assert_allclose(got[1], np.abs(real - real[C - 1]), atol=1e-6)
    np.testing.assert_allclose(got[2], (held[1] + held[2]) / 2 - held[0], atol=1e-6)
    assert np.all(got[2][:C] == 0) and np.any(got[2][C:] != 0)

    L = CONFIG.latent_groups * CONFIG.latent_classes
    blind = jax.tree_util.tree_map(lambda x: x, params)
    blind["params"]["sequence"]["in_proj"]["kernel"] = params["params"]["sequence"]["in_proj"]["kernel"].at[
        L:L + A].set(0.0)
    assert np.all(np.asarray(measure(blind))[2] == 0)


def test_linear_probe_reads_a_linear_value_and_not_noise():
    """Scored on held-out rows: a value that is a linear function of the features is read almost exactly, one drawn
    apart from them is not read at all (R^2 about 0 or below)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 20))
    linear = x @ rng.normal(size=20) + 3.0
    fitted, scored = slice(0, 1500), slice(1500, None)
    read = probe_scores((x[fitted], linear[fitted]), (x[scored], linear[scored]))
    assert read["error"] < 0.01 and read["r2"] > 0.999
    noise = rng.normal(size=2000)
    unread = probe_scores((x[fitted], noise[fitted]), (x[scored], noise[scored]))
    assert unread["r2"] < 0.05 and unread["error"] > 0.7


def test_state_features_are_the_posterior_pass_probabilities(parts):
    """Per frame: the posterior's class probabilities of z_t, the prior's from h_{t-1} (frame 0's from the fresh
    carry) and h_{t-1}, against the posterior pass itself."""
    T, B, G, K = window_length(parts), 3, CONFIG.latent_groups, CONFIG.latent_classes
    params, obs, action, first, key = _jittered_model_and_windows(parts, B)
    got = np.asarray(jax.jit(lambda p: state_features(parts, p, obs, action, first, key))(params))
    assert got.shape == (T, B, 2 * G * K + CONFIG.hidden)
    wm = parts.wm
    _, out = wm.apply(params, wm.initialize_carry(B), obs, action, first, jax.random.split(key, T), method="observe")

    def probabilities(logits):
        return np.asarray(jax.nn.softmax(logits, -1)).reshape(*logits.shape[:-2], -1)

    np.testing.assert_allclose(got[..., :G * K], probabilities(out["post"]), atol=1e-5)
    np.testing.assert_allclose(got[1:, :, G * K:2 * G * K], probabilities(out["prior"][:-1]), atol=1e-5)
    np.testing.assert_allclose(got[0, :, G * K:2 * G * K],
                               probabilities(wm.apply(params, out["h_prev"][0], method="prior")), atol=1e-5)
    np.testing.assert_allclose(got[..., 2 * G * K:], np.asarray(out["h_prev"]), atol=1e-5)


def test_state_probe_windows_and_references(parts, trained_run):
    """The probe's windows cover every row from WARMUP on; its references against a hand computation (a stand-in
    value: the column of Breakout's paddle, channel 0): the fitted rows' mean, and the frame before's value, within an
    episode."""
    _, _, state = open_world_model_run(trained_run[0])
    size = int(state.replay.size)
    windows = probe_windows(state.replay, 0, size // 2, 20)
    starts = windows["first"].shape[1]
    assert windows["obs"].shape[:2] == (20, starts)
    np.testing.assert_array_equal(windows["obs"][:, 0], np.asarray(state.replay.obs[:20, 0]))
    np.testing.assert_array_equal(windows["obs"][:, -1], np.asarray(state.replay.obs[size // 2 - 20:size // 2, 0]))
    covered = np.unique(np.linspace(0, size // 2 - 20, starts).astype(int)[:, None] + np.arange(WARMUP, 20))
    np.testing.assert_array_equal(covered, np.arange(WARMUP, size // 2))
    with pytest.raises(ValueError, match="hold no 20-row window"):
        probe_windows(state.replay, 0, 19, 20)

    def value(frames):
        paddle = jnp.asarray(frames, jnp.float32)[..., 0]
        return (paddle * jnp.arange(paddle.shape[-1])).sum((-1, -2)) / paddle.sum((-1, -2))

    scored = probe_windows(state.replay, size // 2, size, 20)
    table = make_state_probe(parts, windows, scored, value)(init_params(parts, jax.random.PRNGKey(0))["wm"],
                                                            jax.random.PRNGKey(1))
    assert list(table) == [*FEATURES, *REFERENCES]
    fit_y, y = (np.asarray(value(w["obs"]))[WARMUP:].ravel() for w in (windows, scored))
    assert y.std() > 0
    np.testing.assert_allclose(table[REFERENCES[0]]["error"], np.mean(np.abs(y - fit_y.mean())), rtol=1e-5)
    before = np.asarray(value(scored["obs"]))[WARMUP - 1:-1].ravel()
    same_episode = ~scored["first"][WARMUP:].ravel()
    np.testing.assert_allclose(table[REFERENCES[1]]["error"],
                               np.mean(np.abs(before - y)[same_episode]), rtol=1e-5)


def test_moving_sums_count_the_values_away_from_the_windows_still_frame(parts):
    """Only values more than ``MOVING`` from the window's per-value median over its rows count: drawing the real
    frames scores 0, drawing the still frame scores the still frame's own error; and the model's frames are those
    the open loop reconstructs and imagines."""
    real = jnp.asarray([[[0.0, 0.2]], [[0.5 * MOVING, 0.2]], [[0.1, -0.3]]])  # [T=3, B=1, 2]: median [0.025, 0.2]
    sums = np.asarray(moving_sums(jnp.full_like(real, 0.05), real))
    # moving: row 2's both values (0.1 - 0.025 = 0.075, -0.5); rows 0 and 1 stay within MOVING of the median
    np.testing.assert_allclose(sums[:, :, 0], [[0, 0, 0.05 ** 2 + 0.35 ** 2], [0, 0, 0.075 ** 2 + 0.5 ** 2],
                                               [0, 0, 2]], rtol=1e-6)
    assert np.all(np.asarray(moving_sums(real, real))[0] == 0)
    drawn_still = np.asarray(moving_sums(jnp.broadcast_to(jnp.median(real, 0), real.shape), real))
    np.testing.assert_array_equal(drawn_still[0], drawn_still[1])

    C, T, B = CONFIG.imag_context, window_length(parts), 4
    params = init_params(parts, jax.random.PRNGKey(0))["wm"]
    k_obs, k_action, key = jax.random.split(jax.random.PRNGKey(5), 3)
    obs = jax.random.bernoulli(k_obs, 0.3, (T, B, *parts.obs_shape)).astype(parts.obs_dtype)
    action = jax.random.randint(k_action, (T, B), 0, parts.num_actions)
    first = jnp.zeros((T, B), bool).at[0].set(True)
    frames, _ = open_loop_predictions(parts, params, obs, action, first, C, key)
    np.testing.assert_allclose(moving_errors(parts, params, obs, action, first, key),
                               moving_sums(frames, preprocess(obs)), rtol=1e-6)


def test_drawn_objects_read_each_objects_pixels_against_the_rest_of_its_region():
    """Pong's objects in a hand-made frame: the real frame draws each fully and paints nothing elsewhere; the
    background draws nothing; a paddle smeared over its whole column draws its pixels at the smear's share and paints
    the same share elsewhere."""
    background = np.asarray(pong.BACKGROUND, np.float32)
    real = np.broadcast_to(np.asarray(pong.BACKGROUND, np.uint8), (2, 1, 64, 64, 3)).copy()  # [T=2, B=1, ...]
    real[:, 0, 30, 20:22] = 236  # the ball
    real[:, 0, 30:34, 56:58] = (92, 186, 92)  # the agent's paddle
    real[0, 0, 20:24, 6:8] = (213, 130, 74)  # the opponent's, in row 0 only
    paddle = np.abs(np.asarray((92, 186, 92), np.float32) - background).sum()
    smear = real.copy()
    smear[:, 0, 11:59, 56:58] = (background + (np.asarray((92, 186, 92)) - background) / 4).astype(np.uint8)

    def shares(frames):
        totals = np.asarray(object_sums(jnp.asarray(frames), jnp.asarray(real), jnp.asarray(background),
                                        pong.object_masks))
        regions = np.asarray([region.sum() for region, _ in pong.object_masks(real).values()])
        return totals, drawn_shares(totals, regions, {"rows 0-1": np.arange(2), "row 1": np.asarray([1])})

    totals, (ball, agent, opponent) = shares(real)
    assert totals.shape == (3, 4, 2, 1)
    np.testing.assert_allclose(totals[1, :, 0, 0], [8 * paddle, 8 * paddle, 0, 8])
    for row in (ball, agent):
        assert row["rows 0-1"] == row["row 1"] == {"drawn": 1.0, "elsewhere": 0.0}
    assert opponent["rows 0-1"] == {"drawn": 1.0, "elsewhere": 0.0} and opponent["row 1"] is None
    _, (ball, _, opponent) = shares(np.broadcast_to(np.asarray(pong.BACKGROUND, np.uint8), real.shape))
    assert ball["rows 0-1"] == opponent["rows 0-1"] == {"drawn": 0.0, "elsewhere": 0.0}
    _, (_, agent, _) = shares(smear)
    level = np.abs(smear[0, 0, 40, 56].astype(np.float32) - background).sum() / paddle
    assert agent["rows 0-1"] == pytest.approx({"drawn": level, "elsewhere": level}, rel=1e-6) and 0.2 < level < 0.3
    table = format_drawn({"ball": {"observed": {"drawn": 0.5, "elsewhere": 0.01}, "imagined 1": None}})
    assert table.splitlines()[2] == "| ball | 0.50 / 0.01 | - |"


def test_ahead_table_pairs_each_heads_prediction_with_the_reward_paid_k_steps_later():
    """Head k's prediction at row t is scored against the reward of row t + k, where that row is in the window and
    no frame after t starts another episode."""
    paid = np.array([[0.0], [-1.0], [0.0], [2.0], [0.0]])
    first = np.array([[True], [False], [False], [True], [False]])
    predicted = np.stack([np.arange(5.0)[:, None], 10 + np.arange(5.0)[:, None]])  # [K=2, T=5, N=1]
    table = ahead_by_outcome(predicted, paid, first)
    assert list(table) == ["ahead 1", "ahead 2"]
    # ahead 1: rows 0, 1, 3 (row 2's next frame starts an episode, row 4 has none): paid -1, 0, 0
    assert [table["ahead 1"][o] for o in OUTCOMES] == [(1, 0.0), (2, 2.0), (0, None)]
    # ahead 2: row 0 only (rows 1, 2 reach past frame 3's start): paid 0
    assert [table["ahead 2"][o] for o in OUTCOMES] == [(0, None), (1, 10.0), (0, None)]


def test_reward_events_script_reads_a_run_and_refits(trained_run, capsys):
    run_dir, _ = trained_run
    main = _script("world_model_reward_events.py")
    out = main([run_dir, "--windows", "4"])
    assert out["checkpoint"] == CONFIG.num_chunks and out["first_row"] == 60 and out["progress"] == []
    assert sum(out["table"]["imagined 1"][o][0] for o in OUTCOMES) == 4 * CONFIG.num_envs
    assert sum(out["agreement"]["imagined 2"][o][0] for o in OUTCOMES) == 4 * CONFIG.num_envs
    printed = capsys.readouterr().out
    assert "| paid < 0: mean prediction (steps) |" in printed and "| paid 0: groups agreeing (windows) |" in printed
    H = CONFIG.horizon
    assert list(out["content"]) == ["observed", *(f"imagined {k}" for k in sorted({1, 2, H // 2, H - 1}))]
    for column in out["content"].values():
        assert list(column) == list(CONTENT) and 0 < column[CONTENT[1]] < 1 and column[CONTENT[0]] > 0
    assert "What the frames draw" in printed and "| moving pixels' error, a share of the still frame's |" in printed
    assert list(out["actions"]) == [f"imagined {k}" for k in sorted({1, 2, H // 2, H - 1})]
    assert all(list(column) == list(MEASURES) and min(column.values()) >= 0 for column in out["actions"].values())
    assert "each of the 3 actions held from the last observed step on" in printed
    assert "| frames: actions apart |" in printed
    assert list(out["returns"]) == [*RETURNS, "replay rows"]
    assert all(len(row) == 3 for row in out["returns"].values()) and sum(out["returns"]["replay rows"]) > 0
    assert "The return imagination gives each action" in printed
    assert re.search(r"\| imagined: the action held \| [+-]\d\.\d{3} \| [+-]\d\.\d{3} \| [+-]\d\.\d{3} \|", printed)

    refit = main([run_dir, "--windows", "2", "--refit", "2", "--every", "1", "--set", "hidden=8", "--from", "0.75"])
    assert [p["update"] for p in refit["progress"]] == [1, 2] and refit["first_row"] == 90
    printed = capsys.readouterr().out
    assert "a fresh rssm model refitted on rows 0-90, {'hidden': 8}" in printed
    assert re.search(r"update 2: correlation .*; mean over the update: reconstruction loss \d+\.\d{2}, reward loss "
                     r"\d+\.\d{3}, representation KL \d+\.\d{2} nats; first latent agrees, by imagined 2's "
                     r"payment: paid < 0 .*; moving pixels' "
                     r"error \d\.\d{3} of the still frame's \(observed\); imagined frame 1: actions apart \d\.\d{5}, "
                     r"sampling keys apart \d\.\d{5}\n", printed)
    assert all(p["content"]["observed"] and p["actions"]["imagined 1"] for p in refit["progress"])
    main([run_dir, "--windows", "2", "--refit", "1", "--every", "1", "--set", "prior_reward_scale=1", "--set",
          "model=drama", "--from", "0.75"])
    printed = capsys.readouterr().out
    # the header names the run's backbone, then the one refitted
    assert printed.startswith("rssm on Breakout-MinAtar") and "a fresh drama model refitted on rows 0-90" in printed
    assert re.search(r"update 1: .*representation KL \d+\.\d{2} nats, prior-fed reward loss \d+\.\d{3}; ", printed)
    ahead = main([run_dir, "--windows", "2", "--refit", "1", "--every", "1", "--set", "reward_ahead=2", "--from",
                  "0.75"])
    printed = capsys.readouterr().out
    assert re.search(r"update 1: correlation .*, ahead 1 \S+, ahead 2 \S+; .* nats, reward-ahead loss \d+\.\d{3}; ",
                     printed)
    assert "read from the observed state (the reward_ahead heads)" in printed and list(ahead["ahead"]) == [
        "ahead 1", "ahead 2"]
    assert out["ahead"] is None
    one_step = main([run_dir, "--windows", "2", "--refit", "1", "--set", "horizon=1", "--from", "0.75"])
    # with one imagined step the windows end before the frame the first latent is compared with
    assert one_step["agreement"] is None and one_step["actions"] is None and one_step["returns"] is None
    printed = capsys.readouterr().out
    assert "Imagination's first latent" not in printed and "answer to the actions" not in printed

    warm = main([run_dir, "--windows", "2", "--refit", "1", "--warm", "--set", "wm_lr=1e-9", "--from", "0.75"])
    assert "the run's rssm model refitted on rows 0-90, {'wm_lr': 1e-09}" in capsys.readouterr().out
    # one update at a learning rate of 1e-9 leaves the run's model where it was: its table, not a fresh model's
    fresh = main([run_dir, "--windows", "2", "--refit", "1", "--set", "wm_lr=1e-9", "--from", "0.75"])
    as_run = main([run_dir, "--windows", "2", "--from", "0.75"])
    capsys.readouterr()
    moving = [out["content"]["observed"][CONTENT[0]] for out in (warm, as_run, fresh)]
    assert moving[0] == pytest.approx(moving[1], rel=1e-3) and moving[2] != pytest.approx(moving[1], rel=1e-3)
    for argv, message in [(["--every", "5"], "--set, --every and --warm change a --refit world model"),
                          (["--warm"], "--set, --every and --warm change a --refit world model"),
                          (["--refit", "1", "--warm", "--set", "hidden=8"],
                           "--warm: the run's world model has other parameters than one with {'hidden': 8}"),
                          (["--refit", "1", "--set", "hiden=8"], "--set: hiden: not a world-model setting; valid: "),
                          (["--refit", "1", "--set", "hidden=-1"], "--set: hidden must be >= 1"),
                          (["--from", "1.5"], "--from must be in [0, 1), got 1.5"),
                          (["--from", "0.99"], "leaves 2 rows, fewer than a 6-step window")]:
        with pytest.raises(SystemExit):
            main([run_dir, *argv])
        assert message in capsys.readouterr().err, argv
    assert out["objects"] is None and "Pong's objects" not in printed
    assert out["paddle"] is None and "The agent's paddle" not in printed


def test_reward_events_and_autoencoder_scripts_read_a_games_objects(trained_run, monkeypatch, capsys):
    """A run of a game whose objects are read gets their table: here the tiny run's env is given one object, the
    pixels of its frames' first channel."""
    run_dir, _ = trained_run
    channels = _script("world_model_reward_events.py").__globals__["open_world_model_run"](run_dir)[0].obs_shape[-1]
    monkeypatch.setitem(GAME_OBJECTS, CONFIG.env_name, ((0,) * channels, lambda obs: {
        "thing": (np.ones(obs.shape[-3:-1], bool), obs[..., 0] > 0)}))
    H = CONFIG.horizon
    out = _script("world_model_reward_events.py")([run_dir, "--windows", "2"])
    assert list(out["objects"]) == ["thing"]
    assert list(out["objects"]["thing"]) == ["observed", *(f"imagined {k}" for k in sorted({1, 2, H // 2, H - 1}))]
    printed = capsys.readouterr().out
    assert "The game's objects: the frames' distance from the background" in printed
    assert re.search(r"\| thing \| \d+\.\d{2} / \d+\.\d{2} \|", printed), printed
    out = _script("world_model_autoencoder.py")([run_dir, "--updates", "1", "--every", "1", "--batch", "4",
                                                  "--windows", "2"])
    assert list(out["objects"]) == ["thing"] and list(out["objects"]["thing"]) == ["reconstructed"]
    assert "The game's objects in the reconstructions" in capsys.readouterr().out


def test_reward_events_script_reads_a_games_paddle(trained_run, monkeypatch, capsys):
    """A run of a game whose paddle is read gets its table and the state probe's, and with --every their figures on
    each progress line; too few rows before the probed ones to fit a probe on are said. Here the tiny run's env is
    given a stand-in reader (a frame's mean first channel) and one up and one down action."""
    run_dir, _ = trained_run
    monkeypatch.setitem(GAME_PADDLES, CONFIG.env_name,
                        (lambda frames: jnp.asarray(frames, jnp.float32)[..., 0].mean((-1, -2)), (0,), (1,)))
    H = CONFIG.horizon
    main = _script("world_model_reward_events.py")
    out = main([run_dir, "--windows", "2"])
    columns = ["observed", *(f"imagined {k}" for k in sorted({1, 2, H // 2, H - 1}))]
    assert list(out["paddle"]) == columns
    assert out["paddle"]["observed"]["down minus up, imagined"] is None
    held = out["paddle"]["imagined 1"]["replay rows held down, up"]
    assert held[0] > 0 and held[1] > 0  # random play holds each action for one step
    printed = capsys.readouterr().out
    assert "The agent's paddle: where imagination puts it" in printed
    assert re.search(r"\| down minus up, replay \| - \| -?\d+\.\d{2} \|", printed), printed
    assert list(out["state_probe"]) == ["this model", "untrained"]
    assert all(list(table) == [*FEATURES, *REFERENCES] for table in out["state_probe"].values())
    assert "The agent's paddle's row read linearly from the model's state" in printed
    assert re.search(r"\| posterior of z_t \| \d+\.\d{2} / [+-]\d\.\d{3} \| \d+\.\d{2} / [+-]\d\.\d{3} \|", printed)
    assert main([run_dir, "--windows", "2", "--from", "0.05"])["state_probe"] is None  # 6 rows before the probed
    assert "The paddle's row is not probed from the model's state: rows 0-6" in capsys.readouterr().out
    main([run_dir, "--windows", "2", "--refit", "1", "--every", "1", "--from", "0.75"])
    progress = capsys.readouterr().out
    assert re.search(r"; paddle's rows, down minus up \(replay\), error: imagined 1 -?\d+\.\d{2} \(-?\d+\.\d{2}\), "
                     r"\d+\.\d{2}, imagined 2 ", progress)
    assert re.search(r"; paddle's row read linearly, held-out error: posterior of z_t \d+\.\d{2}, prior of z_t "
                     r"\d+\.\d{2}, h_\{t-1\} \d+\.\d{2}", progress), progress


def test_reward_from_frames_rows():
    """Rows t whose frames t-1, t, t+1 (t-back .. t+1 for --ahead) are in one episode, in row order; training rows
    end before the split, test rows start after it."""
    usable_rows = _script("reward_from_frames.py").__globals__["usable_rows"]
    first = np.zeros((12, 2), bool)
    first[0] = True
    first[4, 0] = first[9, 1] = True  # drops the row before (next frame in the new episode) and itself (previous not)
    train, test = usable_rows(first, 6)
    assert sorted(map(tuple, train.tolist())) == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 1), (4, 1)]
    assert sorted(map(tuple, test.tolist())) == [(7, 0), (7, 1), (8, 0), (9, 0), (10, 0), (10, 1)]
    assert train.tolist() == sorted(train.tolist())  # in row order: --train-rows N takes the earliest N
    train, test = usable_rows(first, 6, back=2)  # --ahead 2: frames t-2 .. t+1, tested from t-2 at the split on
    assert train.tolist() == [[2, 0], [2, 1], [3, 1], [4, 1]]
    assert test.tolist() == [[8, 0], [9, 0], [10, 0]]


def test_reward_from_frames_inputs_ahead():
    """``--ahead K`` reads the two frames ``o_{t-K}, o_{t-K+1}`` and the actions ``a_{t-K+1} .. a_t`` of row t: the
    context and actions of the world model's K-th imagined step."""
    globals_ = _script("reward_from_frames.py").__globals__
    frame_inputs, action_inputs = globals_["frame_inputs"], globals_["action_inputs"]
    obs = np.broadcast_to(np.arange(10.0)[:, None, None], (10, 2, 1))  # each frame holds its row
    action = np.broadcast_to((np.arange(10) % 3)[:, None], (10, 2))
    pairs = np.array([[5, 0], [7, 1]])
    assert frame_inputs(obs, pairs, "before").tolist() == [[4, 5], [6, 7]]
    assert frame_inputs(obs, pairs, "before", ahead=3).tolist() == [[2, 3], [4, 5]]
    assert frame_inputs(obs, pairs, "after", ahead=3).tolist() == [[6], [8]]  # only before looks ahead
    assert np.asarray(action_inputs(action, pairs, 3)).tolist() == [[0, 0, 1], [0, 1, 0]]
    assert np.asarray(action_inputs(action, pairs, 3, ahead=2)).tolist() == [[0, 1, 0, 0, 0, 1], [1, 0, 0, 0, 1, 0]]


def test_reward_from_frames_script_reads_a_run(trained_run, capsys):
    script = _script("reward_from_frames.py")
    run_dir, _ = trained_run
    out = script([run_dir, "--updates", "2", "--batch", "4", "--frames", "before", "after"])
    assert list(out["table"]) == ["before", "after"] and out["first_row"] == 90
    assert sum(out["table"]["after"][o][0] for o in OUTCOMES) == out["test_rows"] > 0
    printed = capsys.readouterr().out
    assert f"{out['train_rows']} rows to train on" in printed and "| paid < 0: mean prediction (steps) | " in printed
    for argv, message in [(["--from", "1"], "--from must be in (0, 1), got 1.0"),
                          (["--updates", "0"], "--updates must be >= 1 and --batch >= 2, got 0, 64"),
                          (["--train-rows", "0"], "--train-rows must be >= 1, got 0"),
                          (["--ahead", "0", "--frames", "before"], "--ahead must be >= 1, got 0"),
                          (["--ahead", "2"], "--ahead foresees the reward from the frames before it: it needs "
                                             "--frames before, got before after both"),
                          (["--frames", "later"], "invalid choice: 'later'"),
                          (["--loss", "huber"], "invalid choice: 'huber'"),
                          (["--net", "latent"], "--net latent reads the run's encoder, of one frame: it needs "
                                                "--frames after, got before after both"),
                          (["--recon", "--frames", "after"], "--recon reconstructs through the run's decoder: it "
                                                             "needs --net encoder or latent"),
                          (["--stop-recon-gradient", "--frames", "after", "--net", "latent"],
                           "--stop-recon-gradient stops the decoder's gradient: it needs --recon"),
                          (["--set", "latent_groups=2", "--frames", "after"], "--set changes the run's pieces "
                           "that --net encoder / latent and --head world_model build"),
                          (["--head", "wide"], "invalid choice: 'wide'"),
                          (["--set", "latent_grups=2", "--frames", "after", "--net", "encoder"],
                           "--set: latent_grups: not a world-model setting; valid: "),
                          (["--set", "latent_groups=0", "--frames", "after", "--net", "latent"],
                           "--set: latent_groups must be >= 1")]:
        with pytest.raises(SystemExit):
            script([run_dir, *argv])
        assert message in capsys.readouterr().err, argv

    fewer = script([run_dir, "--updates", "2", "--batch", "4", "--frames", "after", "--train-rows", "5"])
    assert fewer["train_rows"] == 5 and fewer["test_rows"] == out["test_rows"]
    assert "5 rows to train on" in capsys.readouterr().out
    ahead = script([run_dir, "--updates", "2", "--batch", "4", "--frames", "before", "--ahead", "3"])
    assert 0 < ahead["test_rows"] < out["test_rows"]  # rows need frames from t-3 on, scored from the split on
    assert "3 steps ahead" in capsys.readouterr().out

    out = script([run_dir, "--updates", "4", "--batch", "4", "--frames", "after", "--net", "latent", "--recon",
                  "--stop-recon-gradient", "--set", "latent_groups=2", "--set", "reward_loss_scale=10"])
    assert sum(out["table"]["after"][o][0] for o in OUTCOMES) == out["test_rows"]
    printed = capsys.readouterr().out
    assert ("latent net with the reconstruction (its gradient stopped), {'latent_groups': 2, 'reward_loss_scale': "
            "10}") in printed
    assert "after, update 4: correlation" in printed and "(on the training rows " in printed
    assert "; reconstruction error " in printed and out["table"]["after"]["reconstruction"] > 0

    fit_and_score = script.__globals__["fit_and_score"]
    rng = np.random.default_rng(0)
    obs, action = rng.normal(size=(40, 1, 3)).astype(np.float32), np.zeros((40, 1), np.int32)
    reward = np.zeros((40, 1), np.float32)
    train = np.stack([np.arange(1, 20), np.zeros(19, int)], 1)
    test = np.stack([np.arange(21, 39), np.zeros(18, int)], 1)
    with pytest.raises(ValueError, match="--balanced needs rewarded and unrewarded training rows, got 0 and 19"):
        fit_and_score(obs, action, reward, train, test, "after", 2, 1, 4, True, 0)
    reward[5:40:3] = 1.0
    entry = fit_and_score(obs, action, reward, train, test, "both", 2, 2, 4, True, 0)
    assert entry["paid > 0"][0] == 6 and entry["paid 0"][0] == 12 and entry["paid < 0"] == (0, None)
    bins = D.bin_values(255)  # the world model's two-hot loss: half of each batch paid 1 pulls the predictions up
    once = fit_and_score(obs, action, reward, train, test, "both", 2, 1, 4, True, 0, bins=bins)
    more = fit_and_score(obs, action, reward, train, test, "both", 2, 20, 4, True, 0, bins=bins)
    assert more["paid > 0"][1] > once["paid > 0"][1]


def test_reward_from_frames_nets_are_the_world_models_pieces(parts):
    """``--net encoder / latent --recon`` build the run's own encoder, posterior head and decoder: the same parameter
    shapes as the world model's, and a latent of one one-hot class per group."""
    make_reward_net = _script("reward_from_frames.py").__globals__["make_reward_net"]
    net = make_reward_net(CONFIG, parts.obs_shape, "latent", True, 1)
    obs = jnp.zeros((3, *parts.obs_shape), parts.obs_dtype)
    key = jax.random.PRNGKey(0)
    params = net.init(key, obs, None, key)["params"]
    wm = init_params(parts, key)["wm"]["params"]
    def shapes(tree):  # the first Dense's input differs: the world model's also reads the sequence output
        shapes = jax.tree.map(jnp.shape, tree)
        return {**shapes, "Dense_0": {**shapes["Dense_0"], "kernel": shapes["Dense_0"]["kernel"][1:]}}

    assert jax.tree.map(jnp.shape, params["encoder"]) == jax.tree.map(jnp.shape, wm["encoder"])
    assert shapes(params["decoder"]) == shapes(wm["observation_decoder"])
    assert params["decoder"]["Dense_0"]["kernel"].shape[0] == CONFIG.latent_groups * CONFIG.latent_classes
    assert shapes(params["latent"]["MLP_0"]) == shapes(wm["sequence"]["post_head"])
    z = net.apply({"params": params}, obs, None, key, method=lambda m, x, a, k: m.latent(m.encoder(x), k))
    chex.assert_shape(z, (3, CONFIG.latent_groups * CONFIG.latent_classes))
    np.testing.assert_allclose(z.reshape(3, CONFIG.latent_groups, -1).sum(-1), 1.0, rtol=1e-6)
    out, recon = net.apply({"params": params}, obs, None, key)
    chex.assert_shape([out, recon], [(3, 1), (3, *parts.obs_shape)])

    def recon_grads(net):  # the reconstruction's gradient, by piece: its features' only with recon_gradient
        def loss(p):
            return jnp.sum((net.apply({"params": p}, obs, None, key)[1] - 0.5) ** 2)

        return {k: float(optax.tree.norm(g)) for k, g in jax.grad(loss)(params).items()}

    shared, stopped = recon_grads(net), recon_grads(make_reward_net(CONFIG, parts.obs_shape, "latent", True, 1, False))
    assert min(shared["encoder"], shared["latent"], shared["decoder"], stopped["decoder"]) > 0
    assert stopped["encoder"] == stopped["latent"] == 0.0


def test_reward_from_frames_world_model_head_is_the_reward_heads_init(parts):
    """``--head world_model`` is the run's reward head: zero-initialised (``reward_zero_init``), the reward's first
    gradient reaches only its output layer; with LeCun-normal weights it reaches the encoder and latent too. Either way
    the same parameter shapes as the world model's head, which also reads the sequence output."""
    make_reward_net = _script("reward_from_frames.py").__globals__["make_reward_net"]
    obs = jnp.zeros((3, *parts.obs_shape), parts.obs_dtype)
    key = jax.random.PRNGKey(0)
    wm_head = jax.tree.map(jnp.shape, init_params(parts, key)["wm"]["params"]["reward_head"])

    def reward_grads(**changes):
        net = make_reward_net(dataclasses.replace(CONFIG, **changes), parts.obs_shape, "latent", False,
                              CONFIG.reward_bins, head="world_model")
        params = net.init(key, obs, None, key)["params"]
        head = jax.tree.map(jnp.shape, params["head"])
        assert head == {**wm_head, "Dense_0": {"kernel": (CONFIG.latent_size, wm_head["Dense_0"]["kernel"][1])}}

        def loss(p):
            return jnp.sum((net.apply({"params": p}, obs, None, key)[0] - 1.0) ** 2)

        return {k: float(optax.tree.norm(g)) for k, g in jax.grad(loss)(params).items()}

    zero, lecun = reward_grads(), reward_grads(reward_zero_init=False)
    assert zero["encoder"] == zero["latent"] == 0.0 and zero["head"] > 0
    assert lecun["encoder"] > 0 and lecun["latent"] > 0


def test_frame_autoencoder_feeds_its_decoder_what_the_bottleneck_names(parts):
    """``none``: the encoder's features; ``onehot``: a one-hot sample of each of the ``latent_groups`` softmaxes,
    drawn with the key; ``dense``: ``latent_groups x latent_classes`` values, not one-hot; ``posterior``: a one-hot
    sample as well, of logits from an ``mlp_hidden``-wide MLP (the world model's posterior head; one Dense where its
    ``posterior_head`` is linear); any other name is refused with the valid ones."""
    obs = jax.random.bernoulli(jax.random.PRNGKey(1), 0.3, (5, *parts.obs_shape)).astype(parts.obs_dtype)
    G, C = CONFIG.latent_groups, CONFIG.latent_classes
    seen = {}

    def record(call, args, kwargs, context):
        out = call(*args, **kwargs)
        if context.method_name == "__call__":
            seen[context.module.name] = (args[0], out)
        return out

    for bottleneck in BOTTLENECKS:
        model = frame_autoencoder(CONFIG, parts.obs_shape, bottleneck)
        params = model.init(jax.random.PRNGKey(0), obs, jax.random.PRNGKey(0))
        with nn.intercept_methods(record):
            frames = model.apply(params, obs, jax.random.PRNGKey(2))
        chex.assert_shape(frames, (5, *parts.obs_shape))
        decoded, features = np.asarray(seen["dec"][0]), np.asarray(seen["enc"][1])
        assert ("to_latent" in params["params"]) == (bottleneck != "none")
        if bottleneck == "none":
            np.testing.assert_array_equal(decoded, features)
        else:
            groups = decoded.reshape(5, G, C)
            one_hot = np.all((np.abs(groups) < 1e-6) | (np.abs(groups - 1) < 1e-6)) and np.allclose(groups.sum(-1), 1)
            assert one_hot == (bottleneck in ("onehot", "posterior")), bottleneck
        if bottleneck == "posterior":
            head = params["params"]["to_latent"]
            chex.assert_shape(head["Dense_0"]["kernel"], (features.shape[-1], CONFIG.mlp_hidden))
            chex.assert_shape(head[f"Dense_{CONFIG.mlp_layers}"]["kernel"], (CONFIG.mlp_hidden, G * C))
            linear = frame_autoencoder(dataclasses.replace(CONFIG, posterior_head="linear"), parts.obs_shape,
                                       bottleneck).init(jax.random.PRNGKey(0), obs, jax.random.PRNGKey(0))
            assert list(linear["params"]["to_latent"]) == ["Dense_0"], "the world model's linear head: one Dense"
        again = model.apply(params, obs, jax.random.PRNGKey(3))
        assert np.array_equal(frames, again) == (bottleneck in ("none", "dense")), bottleneck
    with pytest.raises(ValueError, match=r"unknown bottleneck 'softmax'; valid: \['none', 'onehot', 'dense', "
                                         r"'posterior'\]"):
        frame_autoencoder(CONFIG, parts.obs_shape, "softmax").init(jax.random.PRNGKey(0), obs, jax.random.PRNGKey(0))


def test_frame_autoencoder_learns_the_runs_frames_and_its_script_reads_a_run(trained_run, capsys):
    """Trained alone on the tiny run's MinAtar frames, the encoder and decoder reconstruct them far better than at
    the start; the script reports every ``--every`` updates and refuses bad arguments before compiling."""
    run_dir, _ = trained_run
    main = _script("world_model_autoencoder.py")
    out = main([run_dir, "--updates", "60", "--every", "20", "--batch", "16", "--windows", "4", "--set", "wm_lr=3e-3"])
    assert [p["update"] for p in out["progress"]] == [20, 40, 60] and out["frames"] == 90 * CONFIG.num_envs
    assert out["objects"] is None  # MinAtar's objects are not read
    assert out["progress"][-1]["loss"] < 0.3 * out["progress"][0]["loss"], out["progress"]
    assert all(p["moving"] is None or p["moving"] >= 0 for p in out["progress"])
    printed = capsys.readouterr().out
    assert f"{90 * CONFIG.num_envs} frames to train on, {4 * CONFIG.num_envs} windows to measure" in printed
    assert re.search(r"bottleneck none \(4 x 4\), lr 0\.003, seed 0\nupdate 20: reconstruction loss \d+\.\d{2}, "
                     r"moving pixels' error (\d\.\d{3}|-) of the still frame's, \d+ s\n", printed), printed
    for head, named in [("mlp", f"head mlp {CONFIG.mlp_layers} x {CONFIG.mlp_hidden}"), ("linear", "head linear")]:
        main([run_dir, "--updates", "1", "--every", "1", "--batch", "4", "--windows", "1", "--bottleneck", "posterior",
              "--set", f"posterior_head={head}"])
        assert f"bottleneck posterior (4 x 4, {named}, unimix {CONFIG.unimix}), lr" in capsys.readouterr().out, head
    choices = "invalid choice: 'softmax' (choose from 'none', 'onehot', 'dense', 'posterior')"
    for argv, message in [(["--bottleneck", "softmax"], choices),
                          (["--set", "wm_lr=0"], "--set: wm_lr must be > 0"),
                          (["--every", "0"], "--updates, --every, --batch and --windows must be >= 1"),
                          (["--from", "0.99"], "into 118 to train on and 2 to measure on; at least 1 and a 6-step")]:
        with pytest.raises(SystemExit):
            main([run_dir, *argv])
        assert message in capsys.readouterr().err, argv
