"""PPO on the meta-RL environment: config mapping, evaluation splits, a tiny end-to-end run."""

import os

import numpy as np
from hydra import compose, initialize_config_dir

from ssmrl import envs
from ssmrl.agents.ppo.config import PPOConfig
from ssmrl.experiment.config import parse
from ssmrl.experiment.evaluation import evaluate_run
from ssmrl.experiment.ppo import run_ppo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_meta_config_group_maps_onto_env_options():
    with initialize_config_dir(config_dir=os.path.join(ROOT, "configs", "ppo"), version_base="1.3"):
        cfg = compose("ppo", overrides=["env=meta", "env.options.trials=3",
                                        "env.options.train=[CartPole-v1,Catch-bsuite]",
                                        "+env.options.project_obs=false"])
    config = parse("ppo", cfg).ppo
    options = dict(config.env_options)
    assert config.env_name == "meta"
    assert options["trials"] == 3 and options["train"] == ("CartPole-v1", "Catch-bsuite")
    assert options["project_obs"] is False and options["project_actions"] is True
    hash(config)  # stays usable as a static jit argument


def test_evaluation_splits_of_the_meta_env():
    splits = envs.evaluation_splits("meta", train=("CartPole-v1",), heldout=("Catch-bsuite",), projection_seeds=8,
                                    projection_offset=0)
    assert list(splits) == ["train", "new_projections", "heldout"]
    assert splits["train"]["pool"] == "train" and splits["heldout"]["pool"] == "heldout"
    assert splits["new_projections"]["projection_offset"] == 8
    fresh = envs.evaluation_splits("meta", train=("CartPole-v1",), heldout=("Catch-bsuite",), projection_seeds=0)
    assert list(fresh) == ["train", "heldout"]
    assert list(envs.evaluation_splits("RepeatPreviousEasy")) == ["train"]


TINY_META = PPOConfig(
    env_name="meta",
    env_options=(("heldout", ("Acrobot-v1",)), ("projection_seeds", 4), ("train", ("CartPole-v1", "Catch-bsuite")),
                 ("trial_steps", 12), ("trials", 3)),
    model="s5", features=16, num_layers=1, model_options=(("state_size", 8),), encoder_hidden=16, head_hidden=16,
    total_timesteps=8 * 32 * 2, num_envs=8, num_steps=32, update_epochs=1, num_minibatches=2, updates_per_chunk=2,
    eval_envs=4,
)


def test_tiny_meta_run_evaluates_every_split(tmp_path):
    summary = run_ppo(TINY_META, str(tmp_path), seeds=1, progress=False)
    assert summary["finished"]
    report = evaluate_run(str(tmp_path), episodes=8)
    assert list(report["splits"]) == ["train", "new_projections", "heldout"]
    for stats in report["splits"].values():
        assert len(stats["trial_mean"]) == 3 and len(stats["trial_ci95"]) == 3
        assert np.all(np.isfinite(stats["trial_mean"]))
    assert report["splits"]["heldout"]["options"]["pool"] == "heldout"
    assert (tmp_path / "eval.json").exists() and (tmp_path / "eval.png").exists()
