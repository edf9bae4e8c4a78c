"""How a world model rates policies against the env (agents/world_model/ratings.py), and the probe script that
reads a run with it (scripts/world_model_policy_probe.py), on Breakout-MinAtar, whose step is deterministic:
holding the paddle left or right loses the ball on step 6 of every episode, standing still scores."""

import os
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.agents.world_model import config as wmc
from ssmrl.agents.world_model.agent import build, init_params
from ssmrl.agents.world_model.ratings import env_ratings, imagined_ratings, policy_names
from ssmrl.experiment.world_model import run_world_model

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


def test_probe_script_reads_a_run(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    summary = run_world_model(CONFIG, run_dir, progress=False)
    main = runpy.run_path(os.path.join(ROOT, "scripts", "world_model_policy_probe.py"), run_name="probe")["main"]
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
