"""Recurrent PPO: config validation, GAE, a vmapped multi-seed run, checkpoint resume, evaluation."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.agents.ppo.config import PPOConfig, from_mapping, validate
from ssmrl.agents.ppo.train import ActionSpec, augment, build, gae, make_chunk, make_train
from ssmrl.experiment.evaluation import evaluate_run
from ssmrl.experiment.ppo import run_ppo

TINY = PPOConfig(
    env_name="RepeatPreviousEasy", model="gru", features=16, num_layers=1, model_options=(), encoder_hidden=16,
    head_hidden=16, total_timesteps=8 * 16 * 4, num_envs=8, num_steps=16, update_epochs=2, num_minibatches=2,
    lr=1e-3, updates_per_chunk=2, eval_envs=4,
)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(env_name="RepeatPreviousEasyy"), r"unknown env_name 'RepeatPreviousEasyy'; valid: .*RepeatPreviousEasy"),
        (dict(model="s6"), r"unknown model 's6'; valid: .*'s5'"),
        (dict(model_options=(("state_sise", 4),)), r"unknown model.options \['state_sise'\] for sequence model 'gru'"),
        (dict(num_envs=6, num_minibatches=4), r"num_envs \(6\) must be divisible by num_minibatches \(4\)"),
        (dict(num_steps=0), r"num_steps must be >= 1, got 0"),
        (dict(gamma=1.5), r"gamma must be <= 1, got 1.5"),
    ],
)
def test_bad_config_is_rejected_before_compiling(change, message):
    with pytest.raises(ValueError, match=message):
        validate(dataclasses.replace(TINY, **change))


def test_unknown_config_key_names_valid_ones():
    with pytest.raises(ValueError, match=r"unknown config key 'learning_rate'; valid: .*'lr'"):
        from_mapping({"learning_rate": 1e-3})


def test_chunks_cover_the_requested_budget():
    config = dataclasses.replace(TINY, total_timesteps=8 * 16 * 7, updates_per_chunk=3)
    assert config.num_chunks == 3 and config.chunk_updates == 3
    assert config.num_updates >= 7


def test_gae_matches_a_python_loop():
    rng = np.random.default_rng(0)
    T, E, gamma, lam = 7, 3, 0.9, 0.8
    values, rewards = rng.normal(size=(T, E)), rng.normal(size=(T, E))
    dones = rng.random((T, E)) < 0.3
    last = rng.normal(size=E)
    adv = np.zeros((T, E))
    running, next_value = np.zeros(E), last
    for t in reversed(range(T)):
        nd = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * nd - values[t]
        running = delta + gamma * lam * nd * running
        adv[t], next_value = running, values[t]
    got_adv, got_targets = gae(jnp.asarray(values), jnp.asarray(rewards), jnp.asarray(dones), jnp.asarray(last), gamma,
                               lam)
    np.testing.assert_allclose(np.asarray(got_adv), adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_targets), adv + values, rtol=1e-5, atol=1e-5)


def test_observation_augmentation():
    spec = ActionSpec(continuous=False, dim=3)
    x = augment(jnp.ones((2, 4)), spec.encode(jnp.array([2, 0])), jnp.array([True, False]))
    np.testing.assert_array_equal(np.asarray(x), [[1, 1, 1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 1, 0, 0, 0]])


def test_make_train_is_pure_and_vmaps_over_seeds():
    """Two seeds vmapped inside one jit: must not hang (popjaxrl deadlocks here) and must differ."""
    train = jax.jit(jax.vmap(make_train(dataclasses.replace(TINY, total_timesteps=8 * 16 * 2))))
    state, metrics = train(jax.random.split(jax.random.PRNGKey(0), 2))
    assert metrics["loss"].shape == (2, 2)
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    # the diagnostics researchers look for, in their ranges
    assert np.all((0 <= metrics["clip_fraction"]) & (metrics["clip_fraction"] <= 1))
    assert np.all(metrics["grad_norm"] > 0) and np.all(metrics["explained_variance"] <= 1)
    np.testing.assert_allclose(metrics["lr"], TINY.lr)
    w = jax.tree_util.tree_leaves(state.train_state.params)
    assert not np.allclose(np.asarray(w[0][0]), np.asarray(w[0][1]))


def test_continuous_actions():
    config = dataclasses.replace(TINY, env_name="Pendulum-v1", total_timesteps=4 * 16, num_envs=4)
    parts = build(config)
    assert parts.actions.continuous and parts.actions.dim == 1
    state, metrics = jax.jit(make_chunk(parts))(jax.jit(parts.init)(jax.random.PRNGKey(0)))
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))


def test_run_writes_outputs_and_resume_reaches_the_same_result(tmp_path, stored_without):
    whole = run_ppo(TINY, str(tmp_path / "whole"), seeds=2, progress=False)
    crashed = tmp_path / "crashed"
    partial = run_ppo(TINY, str(crashed), seeds=2, progress=False, stop_after=1)
    assert not partial["finished"] and partial["updates"] == TINY.chunk_updates
    stored_without(str(crashed), "ppo.precision")  # stored before precision existed: resumes at its default
    resumed = run_ppo(TINY, str(crashed), seeds=2, resume=True, progress=False)
    assert resumed["finished"] and resumed["updates"] == whole["updates"] == TINY.num_updates
    # bit for bit: the same learning curve and final evaluation as the uninterrupted run
    assert resumed["curve"] == whole["curve"] and resumed["final_return"] == whole["final_return"]
    # summed over the crashed process and the resumed one: tests/test_runtime.py checks the sum on a steady clock;
    # here the crashed run's last save, counted in its own figure but not in its checkpoint, can outlast the rest
    assert resumed["wall_time_s"] > 0
    for run in (tmp_path / "whole", crashed):
        files = os.listdir(run)
        assert {"summary.json", "learning_curve.png", "tensorboard", "checkpoints"} <= set(files)
        assert any(f.startswith("events.out.tfevents") for f in os.listdir(run / "tensorboard"))
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["seeds"] == 2 and len(summary["final_return"]) == 2
    assert summary["env_steps"] == TINY.num_updates * TINY.steps_per_update
    assert all(-1.0 <= r <= 1.0 for r in summary["final_return"])

    report = evaluate_run(str(tmp_path / "whole"), episodes=6)
    assert report["episodes"] == 6 and report["checkpoint"] == TINY.num_chunks
    train_split = report["splits"]["train"]
    assert len(train_split["trial_mean"]) == 1 and -1.0 <= train_split["trial_mean"][0] <= 1.0
    assert train_split["trial_ci95"][0] >= 0.0
    assert (tmp_path / "whole" / "eval.json").exists() and (tmp_path / "whole" / "eval.png").exists()


def test_box_actions_with_scalar_bounds_keep_their_shape():
    from gymnax.environments import spaces

    spec = ActionSpec.from_space(spaces.Box(-1.0, 1.0, (3,)))
    out = spec.to_env(jnp.array([[2.0, -0.5, -3.0]]))
    np.testing.assert_array_equal(np.asarray(out), [[1.0, -0.5, -1.0]])


NEW_MODELS = {"lru": (("state_size", 4),), "mingru": (), "linear_attention": (("num_heads", 2),),
              "transformer": (("num_heads", 2), ("memory", 4))}


@pytest.mark.parametrize("model", sorted(NEW_MODELS))
def test_newer_memory_models_run_a_ppo_update(model):
    config = validate(dataclasses.replace(TINY, model=model, model_options=NEW_MODELS[model], num_envs=4,
                                          num_minibatches=2, total_timesteps=4 * 16, updates_per_chunk=1))
    parts = build(config)
    state = jax.jit(parts.init)(jax.random.PRNGKey(0))
    new_state, metrics = jax.jit(make_chunk(parts))(state)
    assert np.all(np.isfinite(np.asarray(metrics["loss"])))
    before, after = (jax.tree_util.tree_leaves(s.train_state.params) for s in (state, new_state))
    assert any(not np.allclose(np.asarray(a), np.asarray(b)) for a, b in zip(before, after))
