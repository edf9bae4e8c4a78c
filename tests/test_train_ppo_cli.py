"""The `train/ppo.py` entry point, sharding across devices, and learning (each in its own process)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, env_extra=None, timeout=900):
    env = dict(os.environ, PYTHONPATH=ROOT)
    # Learning runs want optimised XLA: drop the unit-test flag set in conftest.
    env.pop("XLA_FLAGS", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_bad_env_name_fails_fast_naming_valid_ones(tmp_path):
    out = run(["train/ppo.py", "env.name=RepeatPreviousEasyy", f"hydra.run.dir={tmp_path}"], timeout=120)
    assert out.returncode != 0
    assert "unknown env.name 'RepeatPreviousEasyy'; valid:" in out.stderr
    assert "RepeatPreviousEasy" in out.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_bad_model_name_fails_naming_valid_ones(tmp_path):
    out = run(["train/ppo.py", "model.name=transformerx", f"hydra.run.dir={tmp_path}"], timeout=120)
    assert out.returncode != 0
    assert "unknown model.name 'transformerx'; valid:" in out.stderr


def test_evaluate_names_a_bad_run_dir(tmp_path):
    out = run(["train/evaluate.py", f"run={tmp_path}"], timeout=120)
    assert out.returncode != 0
    assert "run.json not found: not a run directory written by train/ppo.py" in out.stderr


SHARDED = textwrap.dedent(
    """
    import dataclasses, json, sys
    import jax, numpy as np
    from ssmrl.agents.ppo.config import PPOConfig
    from ssmrl.agents.ppo.train import build, make_chunk
    from ssmrl.experiment.ppo import run_ppo, runner_shardings
    from jax.sharding import Mesh
    assert jax.device_count() == 4, jax.devices()
    config = PPOConfig(env_name="RepeatPreviousEasy", model="s5", features=16, num_layers=1,
                       model_options=(("state_size", 8),), encoder_hidden=16, head_hidden=16,
                       total_timesteps=8 * 16 * 2, num_envs=8, num_steps=16, update_epochs=1,
                       num_minibatches=2, updates_per_chunk=1, eval_envs=4)
    parts = build(config)
    state = jax.jit(jax.vmap(parts.init))(jax.random.split(jax.random.PRNGKey(0), 2))
    chunk = jax.vmap(make_chunk(parts))
    _, single = jax.jit(chunk)(state)
    mesh = Mesh(np.asarray(jax.devices()), ("envs",))
    shardings = runner_shardings(state, mesh)
    sharded_state = jax.device_put(state, shardings)
    after, sharded = jax.jit(chunk, in_shardings=(shardings,), out_shardings=(shardings, None))(sharded_state)
    summary = run_ppo(config, sys.argv[1], seeds=2, progress=False)
    print(json.dumps({
        "obs_devices": len(after.obs.sharding.device_set),
        "obs_spec": str(after.obs.sharding.spec),
        "single_loss": np.asarray(single["loss"]).tolist(),
        "sharded_loss": np.asarray(sharded["loss"]).tolist(),
        "finished": summary["finished"],
    }))
    """
)


def test_envs_shard_across_devices(tmp_path):
    # unoptimised XLA as in the unit tests: this checks placement and equal losses, not speed
    out = run(["-c", SHARDED, str(tmp_path)], env_extra={
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["obs_devices"] == 4
    assert "envs" in result["obs_spec"]
    assert result["finished"]
    import numpy as np

    np.testing.assert_allclose(result["sharded_loss"], result["single_loss"], rtol=1e-3, atol=1e-5)


@pytest.fixture(scope="module")
def learning_runs(tmp_path_factory):
    """The `small` preset on RepeatPreviousEasy for S5 and the memoryless MLP, through the CLI."""
    summaries = {}
    for model in ("s5", "mlp"):
        run_dir = tmp_path_factory.mktemp(model)
        out = run(["train/ppo.py", "env=popgym", "preset=small", f"model={model}", "total_timesteps=300000",
                   "progress=false", "deterministic_eval=true", f"hydra.run.dir={run_dir}"])
        assert out.returncode == 0, out.stderr[-3000:]
        summaries[model] = json.loads((run_dir / "summary.json").read_text())
    return summaries


def test_s5_learns_repeat_previous(learning_runs):
    s5 = learning_runs["s5"]
    assert s5["finished"] and s5["env_steps"] >= 300_000
    assert s5["final_return_mean"] > 0.9, s5


def test_memoryless_mlp_does_not(learning_runs):
    assert learning_runs["mlp"]["final_return_mean"] < 0.5, learning_runs["mlp"]


def test_s5_learns_in_context_on_a_two_env_meta_pool(tmp_path):
    """Meta-RL (issue #4): on the two-bandit pool under fresh random action projections, the S5 agent's
    mean return rises from trial 1 to trial 10, by more than both 95% intervals, on the train pool."""
    out = run(["train/ppo.py", "env=meta_bandit", "preset=small", "model=s5", "total_timesteps=200000",
               "num_steps=40", "updates_per_chunk=50", "progress=false", f"hydra.run.dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    out = run(["train/evaluate.py", f"run={tmp_path}", "episodes=256"])
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "eval.json").read_text())
    assert set(report["splits"]) == {"train", "heldout"}
    train = report["splits"]["train"]
    mean, ci = train["trial_mean"], train["trial_ci95"]
    assert len(mean) == 10
    assert mean[-1] - ci[-1] > mean[0] + ci[0], train
    assert mean[-1] - mean[0] > 0.15, train
    assert (tmp_path / "eval.png").exists()
