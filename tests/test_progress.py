"""The progress bar moves after every update, from inside the compiled chunk, with the latest return."""

import math

import jax
import numpy as np

from ssmrl.agents.ppo.config import PPOConfig
from ssmrl.agents.ppo.train import build
from ssmrl.experiment.ppo import seeds_chunk
from ssmrl.experiment.progress import Progress

TINY = PPOConfig(env_name="RepeatPreviousEasy", model="gru", features=8, num_layers=1, model_options=(),
                 encoder_hidden=8, head_hidden=8, total_timesteps=4 * 8 * 3, num_envs=4, num_steps=8,
                 update_epochs=1, num_minibatches=2, updates_per_chunk=3, eval_envs=2)


def test_bar_counts_steps_and_keeps_the_latest_return():
    progress = Progress(total_steps=40, steps_per_update=10)
    progress.on_update(np.array([math.nan, math.nan]))
    assert progress.bar.n == 10 and progress.latest_return is None
    progress.on_update(np.array([math.nan, 0.5]))
    assert progress.bar.n == 20 and progress.latest_return == 0.5
    progress.chunk_done(40, np.array([0.25, 0.75]))
    assert progress.bar.n == 40 and progress.latest_return == 0.5
    progress.close()


def test_the_chunk_reports_every_update_of_every_seed():
    parts = build(TINY)
    seen = []
    chunk = jax.jit(seeds_chunk(parts, lambda returns: seen.append(np.asarray(returns))))
    state = jax.jit(jax.vmap(parts.init))(jax.random.split(jax.random.PRNGKey(0), 2))
    _, metrics = chunk(state)
    jax.effects_barrier()
    assert metrics["loss"].shape == (2, 3)  # [seeds, updates], as run_chunks expects
    assert len(seen) == 3 and all(r.shape == (2,) for r in seen)
    np.testing.assert_array_equal(np.stack(seen, axis=1), np.asarray(metrics["episode_return"]))
