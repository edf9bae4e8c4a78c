"""The two-mode contract, checked for every registered sequence model."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import ssm
from ssmrl.ssm.base import step_mode_outputs

T, B, H_IN, H = 16, 3, 5, 8

# Tiny sizes per model so every contract test stays cheap.
SMALL = {
    "s5": dict(state_size=8, num_layers=2),
    "s4": dict(state_size=8),
    "s4d": dict(state_size=8),
    "mamba": dict(state_size=4),
    "mamba2": dict(state_size=4, head_dim=4, chunk_size=8),
    "gru": dict(num_layers=2),
    "lstm": dict(),
    "mlp": dict(num_layers=2),
    "lru": dict(state_size=8, num_layers=2),
    "mingru": dict(num_layers=2),
    "linear_attention": dict(num_heads=2, num_layers=2),
    "transformer": dict(num_heads=2, memory=5, num_layers=2),
}


def test_registry_covers_every_model():
    assert sorted(SMALL) == ssm.available()


def test_unknown_model_names_valid_ones():
    with pytest.raises(ValueError, match="unknown sequence model 'transformerx'.*'gru'"):
        ssm.make("transformerx", features=4)


def test_unknown_option_names_valid_ones():
    with pytest.raises(ValueError, match="unknown option.*'state_sise'.*state_size"):
        ssm.make("s5", features=4, state_sise=8)


@functools.lru_cache(maxsize=None)
def compiled(name):
    """(model, params, parallel(carry, x, resets), stepped(carry, x, resets)), built once per model."""
    model = ssm.make(name, features=H, **SMALL[name])
    x = jnp.zeros((T, B, H_IN))
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x, jnp.zeros((T, B), bool))

    @jax.jit
    def parallel(carry, x, resets):
        return model.apply(params, carry, x, resets, method="scan")

    @jax.jit
    def stepped(carry, x, resets):
        return step_mode_outputs(model, params, x, resets, carry)

    return model, params, parallel, stepped


def inputs(seed, reset_prob=0.2):
    kx, kr = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (T, B, H_IN))
    resets = jax.random.bernoulli(kr, reset_prob, (T, B)).at[0].set(True)
    return x, resets


def assert_trees_close(a, b, tol=2e-5):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=tol, rtol=tol)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_parallel_equals_step(name):
    model, _, parallel, stepped = compiled(name)
    x, resets = inputs(1)
    carry = model.initialize_carry(B)
    c_par, y_par = parallel(carry, x, resets)
    c_step, y_step = stepped(carry, x, resets)
    assert y_par.shape == (T, B, H)
    assert_trees_close(y_par, y_step)
    assert_trees_close(c_par, c_step)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_resets_split_episodes(name):
    """Episodes joined by a reset give exactly what each gives alone from a fresh carry."""
    model, _, parallel, stepped = compiled(name)
    x, _ = inputs(2)
    cut = 6
    resets = jnp.zeros((T, B), bool).at[cut].set(True)
    fresh = model.initialize_carry(B)
    for run in (parallel, stepped):
        _, y_joined = run(fresh, x, resets)
        _, y_first = run(fresh, x.at[cut:].set(0.0), jnp.zeros((T, B), bool))
        _, y_second = run(fresh, jnp.roll(x, -cut, axis=0), jnp.zeros((T, B), bool))
        assert_trees_close(y_joined[:cut], y_first[:cut])
        assert_trees_close(y_joined[cut:], y_second[: T - cut])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_nonzero_carry_is_honoured(name):
    """A window started from the carry of an earlier window: both modes agree, and the carry matters."""
    model, _, parallel, stepped = compiled(name)
    x0, _ = inputs(3)
    x, _ = inputs(4)
    no_resets = jnp.zeros((T, B), bool)
    fresh = model.initialize_carry(B)
    carry, _ = parallel(fresh, x0, no_resets)
    c_par, y_par = parallel(carry, x, no_resets)
    c_step, y_step = stepped(carry, x, no_resets)
    assert_trees_close(y_par, y_step)
    assert_trees_close(c_par, c_step)
    _, y_fresh = parallel(fresh, x, no_resets)
    if name != "mlp":
        assert not np.allclose(y_par[0], y_fresh[0], atol=1e-4)
    # A reset at step 0 forgets the carry entirely.
    _, y_reset = parallel(carry, x, no_resets.at[0].set(True))
    assert_trees_close(y_reset, y_fresh)


def test_model_is_jittable_under_vmap_over_seeds():
    model = ssm.make("s5", features=H, **SMALL["s5"])
    x = jnp.zeros((T, B, H_IN))
    init = jax.jit(jax.vmap(lambda k: model.init(k, x, jnp.zeros((T, B), bool))))
    params = init(jax.random.split(jax.random.PRNGKey(0), 2))
    leaves = jax.tree_util.tree_leaves(params)
    assert all(leaf.shape[0] == 2 for leaf in leaves)
    assert not np.allclose(params["params"]["layers_0"]["layer"]["B"][0], params["params"]["layers_0"]["layer"]["B"][1])
