"""A tiny end-to-end world-model run on Atari (Boxing) through ``run_world_model``: prefill, two
chunks of training across a simulated crash and ``resume``, evaluation, summary, TensorBoard, GIF."""

import json
import os

import jax
import numpy as np

from ssmrl.agents.world_model import config as wmc
from ssmrl.agents.world_model.agent import build, init
from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.world_model import run_world_model


def test_small_run_crash_resume_and_outputs(tmp_path):
    config = wmc.validate(wmc.small(
        env_name="atari/Boxing", model="drama", hidden=16, latent_groups=4, latent_classes=4, channels=(4, 8, 8, 8, 8),
        mlp_hidden=16, ac_hidden=16, imag_batch=8, imag_context=3, horizon=4, batch_size=2, batch_length=8,
        prefill=40, train_every=40, updates_per_chunk=2, total_steps=200, eval_steps=30, video_context=4,
        video_horizon=4, sampler="dfs"))
    assert config.num_chunks == 2
    run_dir = str(tmp_path)
    partial = run_world_model(config, run_dir, stop_after=1, progress=False)
    assert not partial["finished"] and partial["updates"] == 2
    assert partial["env_steps"] == 40 + 2 * 40

    # the checkpoint holds the replay, DFS counts, RNG key and counters of chunk 1
    template = init(build(config), jax.random.PRNGKey(0))
    ckpt = Checkpoints(os.path.join(run_dir, "checkpoints"))
    step, saved, history = ckpt.restore(template)
    ckpt.close()
    assert step == 1 and int(saved.updates) == 2 and int(saved.replay.size) == 120
    assert int(saved.replay.trained.sum()) == 2 * config.batch_size

    summary = run_world_model(config, run_dir, resume=True, progress=False)
    assert summary["finished"] and summary["updates"] == 4 and summary["env_steps"] == 200
    ckpt = Checkpoints(os.path.join(run_dir, "checkpoints"))
    _, final, history = ckpt.restore(template)
    ckpt.close()
    n = int(saved.replay.size)
    np.testing.assert_array_equal(final.replay.obs[:n], saved.replay.obs[:n])  # resumed on the saved replay
    assert int(final.replay.size) == 200 and len(history["metrics"]["wm_loss"]) == 2
    assert not np.array_equal(np.asarray(final.key), np.asarray(saved.key))

    with open(os.path.join(run_dir, "summary.json")) as f:
        on_disk = json.load(f)
    for key in ("score", "hns", "env_steps", "wall_time_s", "params_world_model", "eval_episodes"):
        assert key in on_disk, key
    assert os.path.getsize(os.path.join(run_dir, "imagination.gif")) > 0
    assert any(name.startswith("events") for name in os.listdir(os.path.join(run_dir, "tensorboard")))


def test_pure_jax_env_resumes_bit_for_bit_and_evaluates(tmp_path):
    """Unlike Atari's emulators, a pure-JAX env lives in the checkpointed state: a run cut after its first
    chunk and resumed ends with exactly the parameters of an uninterrupted run; evaluate.py reads it."""
    from ssmrl.experiment.evaluation import evaluate_run

    config = wmc.validate(wmc.small(
        env_name="RepeatPreviousEasy", model="rssm", hidden=16, latent_groups=4, latent_classes=4, mlp_hidden=16,
        vector_hidden=16, ac_hidden=16, imag_batch=8, imag_context=3, horizon=4, batch_size=2, batch_length=8,
        prefill=40, train_every=40, updates_per_chunk=1, total_steps=120, eval_steps=30, eval_envs=2,
        video_context=4, video_horizon=4))
    whole = run_world_model(config, str(tmp_path / "whole"), progress=False)
    run_world_model(config, str(tmp_path / "cut"), stop_after=1, progress=False)
    resumed = run_world_model(config, str(tmp_path / "cut"), resume=True, progress=False)
    template = init(build(config), jax.random.PRNGKey(0))
    states = []
    for name in ("whole", "cut"):
        ckpt = Checkpoints(str(tmp_path / name / "checkpoints"))
        states.append(ckpt.restore(template)[1])
        ckpt.close()
    for a, b in zip(jax.tree_util.tree_leaves(states[0]), jax.tree_util.tree_leaves(states[1])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed["score"] == whole["score"] and resumed["wm_loss_last_chunk"] == whole["wm_loss_last_chunk"]
    report = evaluate_run(str(tmp_path / "whole"), episodes=2)
    assert report["kind"] == "world_model" and report["checkpoint"] == 2
    assert json.load(open(tmp_path / "whole" / "eval.json"))["splits"]["train"]["episodes"] >= 0
