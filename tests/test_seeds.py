"""Seeds run one after another or vmapped give every seed the result of a one-seed run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.agents.ppo.config import PPOConfig
from ssmrl.agents.ppo.train import build
from ssmrl.experiment.ppo import seeds_chunk
from ssmrl.experiment.seeds import over_seeds, resolve_seed_method

TINY = PPOConfig(env_name="RepeatPreviousEasy", model="s5", features=8, num_layers=1,
                 model_options=(("state_size", 8),), encoder_hidden=8, head_hidden=8, total_timesteps=4 * 8 * 2,
                 num_envs=4, num_steps=8, update_epochs=1, num_minibatches=2, updates_per_chunk=2, eval_envs=2)


def test_bad_method_is_named_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown seed method 'pmap'; valid: \['auto', 'vmap', 'sequential'\]"):
        over_seeds(jnp.sin, "pmap")


def test_auto_runs_seeds_one_after_another_on_the_cpu():
    assert resolve_seed_method("auto") == ("sequential" if jax.default_backend() == "cpu" else "vmap")


@pytest.mark.parametrize("method", ["vmap", "sequential"])
def test_over_seeds_maps_every_argument_and_output_pytree(method):
    def one(tree, x):  # {"w": [3, 2]}, [2] -> ({"y": [3]}, [])
        y = tree["w"] @ x
        return {"y": y}, y.sum()

    trees = {"w": jnp.arange(24.0).reshape(4, 3, 2)}
    xs = jnp.arange(8.0).reshape(4, 2)
    out, total = over_seeds(one, method)(trees, xs)
    assert out["y"].shape == (4, 3) and total.shape == (4,)
    for i in range(4):
        want, want_total = one({"w": trees["w"][i]}, xs[i])
        np.testing.assert_allclose(out["y"][i], want["y"], rtol=1e-6)
        np.testing.assert_allclose(total[i], want_total, rtol=1e-6)


@pytest.mark.parametrize("model, precision", [("s5", "f32"), ("s5", "bf16"), ("lru", "bf16")])
def test_ppo_seeds_in_sequence_match_vmapped_seeds_and_a_one_seed_run(model, precision):
    """In bf16 too: S5 and LRU, whose weights are rebuilt and transposed, once failed to run 2+ seeds on the CPU."""
    parts = build(dataclasses.replace(TINY, model=model, precision=precision))
    close = dict(rtol=1e-4, atol=1e-5) if precision == "f32" else dict(rtol=2e-2, atol=2e-3)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    ends = {}
    for method in ("vmap", "sequential"):
        state = jax.jit(over_seeds(parts.init, method))(keys)
        ends[method] = jax.jit(seeds_chunk(parts, method=method))(state)
    alone = jax.jit(seeds_chunk(parts, method="sequential"))(jax.jit(over_seeds(parts.init, "sequential"))(keys[1:]))
    leaves = [jax.tree_util.tree_leaves(ends[m]) for m in ("vmap", "sequential")]
    for vmapped, sequential, one in zip(*leaves, jax.tree_util.tree_leaves(alone)):
        vmapped, sequential, one = np.asarray(vmapped), np.asarray(sequential), np.asarray(one)
        if np.issubdtype(sequential.dtype, np.floating):
            np.testing.assert_allclose(vmapped, sequential, **close)
        else:
            np.testing.assert_array_equal(vmapped, sequential)
        np.testing.assert_array_equal(sequential[1:], one)  # seed 1 of two is seed 1 alone, to the bit
