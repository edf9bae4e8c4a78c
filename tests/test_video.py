"""Episode videos of image-observation envs: `train/evaluate.py run=... video=true`."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from ssmrl.agents.ppo.config import PPOConfig
from ssmrl.experiment.evaluation import evaluate_run
from ssmrl.experiment.ppo import run_ppo
from ssmrl.experiment.results import read_results
from ssmrl.experiment.video import to_rgb

TINY_MINATAR = PPOConfig(env_name="Breakout-MinAtar", model="mlp", features=8, num_layers=1, model_options=(),
                         encoder_hidden=8, head_hidden=8, total_timesteps=4 * 8, num_envs=4, num_steps=8,
                         update_epochs=1, num_minibatches=2, updates_per_chunk=1, eval_envs=2)


def test_minatar_channels_get_one_colour_each():
    frames = np.zeros((1, 2, 2, 4), bool)
    frames[0, 0, 0, 0] = frames[0, 1, 1, 3] = True
    rgb = to_rgb(frames)
    assert rgb.shape == (1, 2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 1].sum() == 0 and rgb[0, 0, 0].sum() > 0 and not np.array_equal(rgb[0, 0, 0], rgb[0, 1, 1])


def test_video_of_a_minatar_run(tmp_path):
    summary = run_ppo(TINY_MINATAR, str(tmp_path), seeds=1, progress=False)
    # the run's summary.json, as train/report.py reads it (one real run beside test_report's fabricated ones)
    (result,) = read_results(tmp_path)
    assert (result.env, result.model, result.score) == ("Breakout-MinAtar", "mlp", summary["final_return"][0])
    assert len(result.curve_steps) == len(result.curve_returns) == summary["updates"] and result.normalized is None
    report = evaluate_run(str(tmp_path), episodes=2, video=True)
    assert report["video"][0] == str(tmp_path / "episode.gif")
    gif = Image.open(tmp_path / "episode.gif")
    assert gif.n_frames > 1 and min(gif.size) >= 160


def test_video_needs_image_observations(tmp_path):
    config = dataclasses.replace(TINY_MINATAR, env_name="RepeatPreviousEasy")
    (tmp_path / "run.json").write_text(json.dumps({"kind": "ppo", "version": "0.1.0", "config": {
        "ppo": dataclasses.asdict(config), "seeds": 1, "seed": 0}}))
    with pytest.raises(ValueError, match=r"video=true needs image observations \[H, W, C\].*RepeatPreviousEasy"):
        evaluate_run(str(tmp_path), video=True)
