"""A tiny end-to-end world-model run on Atari (Boxing) through ``run_world_model``: prefill, two
chunks of training across a simulated crash and ``resume``, evaluation, summary, TensorBoard, GIF."""

import json
import os

import jax
import numpy as np
import pytest

from ssmrl.agents.world_model import config as wmc
from ssmrl.agents.world_model.agent import build, init
from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.world_model import restore_world_model_run, run_world_model


def test_small_run_crash_resume_and_outputs(tmp_path, stored_without):
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

    stored_without(run_dir, "world_model.recon_moving_weight")  # stored before that setting existed
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


def test_pure_jax_env_resumes_bit_for_bit_extends_and_evaluates(tmp_path):
    """Unlike Atari's emulators, a pure-JAX env lives in the checkpointed state: a run cut after its first
    chunk, resumed to its end and then extended (``total_steps`` 120 -> 200 on resume) ends with exactly the
    parameters, replay and RNG of a run started with 200; the extension keeps the old summary, is listed in
    run.json and cannot shrink back; the evaluation it ended with stays in its history; evaluate.py reads the run."""
    from ssmrl.experiment.evaluation import evaluate_run
    from ssmrl.experiment.run_dir import RunDirError

    def config(total_steps):
        return wmc.validate(wmc.small(
            env_name="RepeatPreviousEasy", model="rssm", hidden=16, latent_groups=4, latent_classes=4, mlp_hidden=16,
            vector_hidden=16, ac_hidden=16, imag_batch=8, imag_context=3, horizon=4, batch_size=2, batch_length=8,
            prefill=40, train_every=40, updates_per_chunk=1, total_steps=total_steps, eval_steps=30, eval_envs=2,
            video_context=4, video_horizon=4))

    short, long = config(120), config(200)
    assert (short.num_chunks, long.num_chunks) == (2, 4)
    whole = run_world_model(long, str(tmp_path / "whole"), progress=False)
    cut = str(tmp_path / "cut")
    run_world_model(short, cut, stop_after=1, progress=False)
    ended = run_world_model(short, cut, resume=True, progress=False)
    assert ended["finished"] and ended["updates"] == 2
    step, stored = restore_world_model_run(cut, build(long))  # the larger config reads the shorter run's replay
    assert step == 2 and stored.replay.action.shape[0] == short.capacity < long.capacity
    extended = run_world_model(long, cut, resume=True, progress=False)
    template = init(build(long), jax.random.PRNGKey(0))
    states = []
    for name in ("whole", "cut"):
        ckpt = Checkpoints(str(tmp_path / name / "checkpoints"))
        states.append(ckpt.restore(template)[1])
        ckpt.close()
    for a, b in zip(jax.tree_util.tree_leaves(states[0]), jax.tree_util.tree_leaves(states[1])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert extended["score"] == whole["score"] and extended["wm_loss_last_chunk"] == whole["wm_loss_last_chunk"]
    assert extended["updates"] == 4 and extended["env_steps"] == whole["env_steps"]
    # the evaluation the short run ended with stays in the extended run's history
    assert ended["eval_history"][-1][0] == 120 and ended["eval_history"][-1] in extended["eval_history"]
    assert extended["eval_history"][-1] == whole["eval_history"][-1] == [200, extended["eval_return"],
                                                                         extended["eval_episodes"]]
    assert json.load(open(tmp_path / "cut" / "summary.total_steps=120.json"))["updates"] == 2
    assert json.load(open(tmp_path / "cut" / "run.json"))["extensions"] == [
        {"key": "world_model.total_steps", "from": 120, "to": 200}]
    with pytest.raises(RunDirError, match="world_model.total_steps may only grow on resume"):
        run_world_model(short, cut, resume=True, progress=False)
    report = evaluate_run(cut, episodes=2, deterministic=True)
    assert report["kind"] == "world_model" and report["checkpoint"] == 4 and report["deterministic"]
    assert json.load(open(tmp_path / "cut" / "eval.json"))["splits"]["train"]["episodes"] >= 0
