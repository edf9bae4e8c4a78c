"""Decision Transformer (agents/dt): token layout, causality of every backbone, return-to-go
bookkeeping at evaluation, and a tiny end-to-end run (collect PointRobot data with PPO, train, evaluate)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import ssm
from ssmrl.agents.dt.model import interleave
from ssmrl.agents.dt.train import (
    DTConfig,
    build,
    context_init,
    context_write,
    make_evaluate,
    make_model,
    prepare_data,
    returns_to_go,
    sample_batch,
)
from ssmrl.experiment.config import DATASETS, parse
from ssmrl.experiment.dt import run_dt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBS, ACT, K = 3, 2, 4


def _compose(name, overrides):
    """The entry point's config as its Hydra command line would build it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=os.path.join(ROOT, "configs", name), version_base="1.3"):
        return OmegaConf.to_container(compose(name, overrides=overrides), resolve=True)


def _inputs(key, b=2, k=K):
    k1, k2, k3 = jax.random.split(key, 3)
    return (jax.random.normal(k1, (b, k)), jax.random.normal(k2, (b, k, OBS)), jax.random.normal(k3, (b, k, ACT)),
            jnp.tile(jnp.arange(k), (b, 1)))


def test_token_layout():
    r, s, a = (jnp.full((1, K, 2), v) + jnp.arange(K)[None, :, None] * 10 for v in (1.0, 2.0, 3.0))
    x = interleave(r, s, a)
    assert x.shape == (1, 3 * K, 2)
    expected = [v + 10 * t for t in range(K) for v in (1.0, 2.0, 3.0)]
    np.testing.assert_array_equal(np.asarray(x[0, :, 0]), expected)

    # Through the model's embeddings: the action at step t only changes token 3t+2.
    model = make_model(DTConfig(backbone="transformer", features=8, num_layers=1, dropout=0.0), ACT, 1.0)
    inputs = _inputs(jax.random.PRNGKey(0))
    params = model.init(jax.random.PRNGKey(1), *inputs)
    tokens = model.apply(params, *inputs, method="tokens")
    changed = list(inputs)
    changed[2] = changed[2].at[:, 1].add(1.0)
    diff = np.abs(np.asarray(model.apply(params, *changed, method="tokens") - tokens)).max(axis=(0, 2))
    assert np.flatnonzero(diff > 0).tolist() == [3 * 1 + 2]


@pytest.mark.parametrize("backbone", ["transformer", "s5", "mamba", "lru", "mingru", "linear_attention"])
def test_causal(backbone):
    options = (("state_size", 4),) if "state_size" in ssm.options(backbone) else ()
    model = make_model(DTConfig(backbone=backbone, features=8, num_layers=2, dropout=0.0,
                                backbone_options=options), ACT, 0.5)
    inputs = _inputs(jax.random.PRNGKey(0))
    params = model.init(jax.random.PRNGKey(1), *inputs)
    base = np.asarray(model.apply(params, *inputs))
    assert base.shape == (2, K, ACT) and np.all(np.abs(base) <= 0.5)
    for t in range(K - 1):
        for which in range(3):  # rtg, state, action at step t+1
            changed = list(inputs)
            changed[which] = changed[which].at[:, t + 1].add(3.0)
            out = np.asarray(model.apply(params, *changed))
            np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-5)
            if which < 2:  # the prediction at t+1 reads R_{t+1} and s_{t+1}
                assert np.abs(out[:, t + 1] - base[:, t + 1]).max() > 1e-6
    # The action at step t is not visible to its own prediction (read from the state token).
    changed = list(inputs)
    changed[2] = changed[2].at[:, 2].add(3.0)
    np.testing.assert_allclose(np.asarray(model.apply(params, *changed))[:, :3], base[:, :3], atol=1e-5)


@pytest.mark.parametrize("backbone", ["transformer", "lru", "mingru", "linear_attention"])
def test_newer_backbones_take_a_training_step(backbone):
    """One DT update with dropout on; the transformer's dropout acts in training only (under a dropout rng)."""
    config = DTConfig(backbone=backbone, features=8, num_layers=1, context_len=K, dropout=0.5, batch_size=2)
    parts = build(config, OBS, ACT, 1.0)
    state = parts.init(jax.random.PRNGKey(0))
    eps = [{"observations": np.ones((2, 6, OBS)), "actions": np.ones((2, 6, ACT)), "rewards": np.ones((2, 6))}]
    batch = sample_batch(prepare_data(eps, rtg_scale=1.0), jax.random.PRNGKey(1), 2, K)
    new_state, metrics = jax.jit(parts.train_step)(state, batch)
    assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
    inputs = (batch.rtg, batch.states, batch.actions, batch.timesteps)
    evals = [parts.model.apply(new_state.params, *inputs) for _ in range(2)]
    np.testing.assert_array_equal(np.asarray(evals[0]), np.asarray(evals[1]))
    if backbone == "transformer":
        # Only the backbone drops here: the DT's own embedding dropout stays off (deterministic=True).
        trained = [parts.model.apply(new_state.params, *inputs, rngs={"dropout": jax.random.PRNGKey(i)})
                   for i in range(2)]
        assert np.abs(np.asarray(trained[0] - trained[1])).max() > 1e-6


def test_returns_to_go_and_segments():
    rewards = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(returns_to_go(rewards), [[6.0, 5.0, 3.0]])
    eps = [{"observations": np.ones((2, 3, OBS)), "actions": np.ones((2, 3, ACT)),
            "rewards": np.tile(rewards, (2, 1))}]
    data = prepare_data(eps, rtg_scale=2.0)
    batch = sample_batch(data, jax.random.PRNGKey(0), 64, 5)
    assert batch.states.shape == (64, 5, OBS)
    mask = np.asarray(batch.mask)
    # Each segment is its valid steps (from a start in [0, 3)) followed by padding.
    assert np.all(mask[:, 0]) and np.all(np.diff(mask.astype(int), axis=1) <= 0)
    assert set(mask.sum(1).tolist()) == {1, 2, 3}
    ts = np.asarray(batch.timesteps)
    rtg = np.asarray(batch.rtg)
    expected = {0: 3.0, 1: 2.5, 2: 1.5}
    for i in range(64):
        for j in np.flatnonzero(mask[i]):
            assert rtg[i, j] == expected[ts[i, j]]
        assert np.all(rtg[i][~mask[i]] == 0)


def test_context_window():
    ctx = context_init(1, 3, 1, 1)
    for t in range(5):
        ctx, pos = context_write(ctx, jnp.int32(t), jnp.full((1,), float(t)), jnp.full((1, 1), 10.0 + t))
        ctx = ctx._replace(actions=ctx.actions.at[:, pos].set(100.0 + t))
        assert int(pos) == min(t, 2)
    np.testing.assert_array_equal(np.asarray(ctx.timesteps[0]), [2, 3, 4])
    np.testing.assert_array_equal(np.asarray(ctx.rtg[0]), [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(np.asarray(ctx.states[0, :, 0]), [12.0, 13.0, 14.0])
    np.testing.assert_array_equal(np.asarray(ctx.actions[0, :, 0]), [102.0, 103.0, 104.0])


def test_evaluation_rtg_bookkeeping():
    from ssmrl.envs.tasks import make_env, task_split

    env = make_env("tasks/point_robot")
    _, test = task_split("tasks/point_robot", seed=0)
    config = DTConfig(backbone="transformer", features=8, num_layers=1, context_len=3, dropout=0.0)
    parts = build(config, 2, 2, 0.1)
    state = parts.init(jax.random.PRNGKey(0))
    evaluate = make_evaluate(parts.model, env, 3, 10.0, num_episodes=2)
    targets = jnp.array([-1.0, -2.0, -3.0, -4.0, -5.0])
    out = evaluate(state.params, test, targets, jnp.zeros(2), jnp.ones(2), jax.random.PRNGKey(1))
    rtg, rewards = np.asarray(out["rtg"]), np.asarray(out["rewards"])
    assert rtg.shape == rewards.shape == (20, 5, 2)
    np.testing.assert_allclose(rtg[0], np.tile(np.asarray(targets)[:, None], (1, 2)))
    np.testing.assert_allclose(rtg[1:], rtg[0] - np.cumsum(rewards, 0)[:-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["returns"]), rewards.sum(0), rtol=1e-6)
    assert np.all(rewards < 0)


def test_end_to_end_point_robot(tmp_path, stored_without):
    from ssmrl.experiment.collect import collect

    values = _compose("collect", ["preset=small", "model.features=16"])
    values.update(episodes_per_task=2, eval_episodes=1, progress=False, total_timesteps=2 * 1280, updates_per_chunk=1,
                  encoder_hidden=16, head_hidden=16)
    data_dir = str(tmp_path / "data")
    # a collection cut after its first chunk and resumed writes exactly the uninterrupted one's datasets
    assert collect(parse("collect", values), data_dir, stop_after=1)["stopped"] == "stop_after"
    stored_without(data_dir, "medium_expert_fraction")  # stored before it existed: resumes at its default
    summary = collect(parse("collect", values), data_dir, resume=True)
    whole = collect(parse("collect", values), str(tmp_path / "whole"))
    assert summary["curve"] == whole["curve"] and summary["datasets"] == whole["datasets"]
    assert len(summary["curve"]) == 3
    for split, n in (("train", 45), ("test", 5)):
        for quality in DATASETS:
            card = json.load(open(os.path.join(data_dir, split, quality, "card.json")))
            assert card["num_tasks"] == n and card["episodes_per_task"] == 2 and card["quality"] == quality
            assert card["horizon"] == 20 and card["obs_dim"] == 2 and card["act_dim"] == 2
    from ssmrl.experiment.datasets import read_dataset

    eps, _ = read_dataset(os.path.join(data_dir, "train", "expert"))
    assert np.all(np.abs(eps[0]["actions"]) <= 0.1 + 1e-6)
    # Observations are raw positions: the first is the origin, and they follow the actions.
    np.testing.assert_allclose(eps[0]["observations"][:, 0], 0.0)
    np.testing.assert_allclose(eps[0]["observations"][:, 1:], np.cumsum(eps[0]["actions"], 1)[:, :-1], atol=1e-5)
    goal = eps[0]["params"]["goal"]
    np.testing.assert_allclose(eps[0]["rewards"], -np.linalg.norm(eps[0]["next_observations"] - goal, axis=-1),
                               atol=1e-5)

    dt_values = _compose("dt", ["preset=small", "env=tasks/point_robot", "model=transformer"])
    dt_values.update(dataset_dir=data_dir, progress=False)
    dt_values["dt"].update(features=8, num_layers=1, context_len=5, batch_size=4, num_steps=3, steps_per_chunk=3,
                           warmup_steps=1, eval_episodes=1)
    run = run_dt(parse("dt", dt_values), str(tmp_path / "run"))
    saved = json.load(open(tmp_path / "run" / "summary.json"))
    assert saved["train_steps"] == 3 and np.isfinite(saved["final_loss"])
    for split, n in (("train", 45), ("test", 5)):
        assert len(run["eval"][split]["per_task_return"]) == n
        assert np.isfinite(run["eval"][split]["return_mean"])
