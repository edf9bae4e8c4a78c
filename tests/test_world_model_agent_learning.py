"""CI learning check of the whole world-model agent: its evaluation return rises on a tiny memory task.

bsuite MemoryChain shows a random bit on the first of 6 steps and pays +-1 on the last for naming it:
without memory the best expected return is 0. A tiny drama agent (the ``popgym`` preset's choices,
with its per-action reward head) trained for 300 updates from its own experience must score well above
that on fresh episodes. The world model must remember the bit and predict the reward of each action, and
the actor must learn from imagined returns. 8 of 8 seeds pass; 1 of 8 with the ``[s_t, a_t]`` reward
head (docs/RESULTS.md). Fails if any part of the agent's learning (world model, imagination,
actor-critic, replay, collection) stops working. With the dense layers in bf16 (``precision=bf16``) 8 of 8 seeds
pass too."""

import pytest

from ssmrl.agents.world_model import config as wmc
from ssmrl.experiment.world_model import run_world_model

UPDATES = 300


def tiny_memory_chain_agent(precision: str = "f32") -> wmc.WorldModelConfig:
    return wmc.validate(wmc.preset(
        "popgym", env_name="MemoryChain-bsuite", model="drama", hidden=32, num_layers=1, state_size=8,
        latent_groups=8, latent_classes=8, vector_hidden=64, mlp_hidden=64, ac_hidden=64, ac_layers=1,
        imag_batch=64, imag_context=8, horizon=8, batch_size=16, batch_length=16, prefill=50, train_every=2,
        updates_per_chunk=25, total_steps=50 + 2 * UPDATES, eval_every=6, eval_envs=16, eval_steps=60,
        precision=precision))


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_agent_return_rises_on_a_memory_task(tmp_path, precision):
    summary = run_world_model(tiny_memory_chain_agent(precision), str(tmp_path), seed=0, progress=False)
    returns = [r for _, r, _ in summary["eval_history"]]
    # first evaluation after 150 updates; chance is 0
    assert summary["finished"] and returns[-1] > 0.8, returns
