"""S4 and S4D: convolution == recurrence (incoming and final carry included), parallel == step mode,
resets split episodes, stable initial eigenvalues, finite gradients over long sequences."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import ssm
from ssmrl.ssm.base import step_mode_outputs
from ssmrl.ssm.s4 import S4Layer, matrix_power
from ssmrl.ssm.s4d import S4DLayer, s4d_init

T, B, H, N = 24, 2, 4, 8
LONG = 4096
NAMES = ("s4", "s4d")
# Larger time steps than the defaults so the carry matters over a short window.
OPTS = dict(state_size=N, dt_min=0.01, dt_max=0.5)


def assert_close(a, b, tol=2e-5):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=tol, rtol=tol)


def inputs(seed, reset_prob=0.0):
    kx, kr = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, (T, B, H))
    resets = jax.random.bernoulli(kr, reset_prob, (T, B))
    return x, resets


@functools.lru_cache(maxsize=None)
def stacked(name):
    """Registry models (auto / conv / scan) sharing one set of params, with jitted runners."""
    models = {mode: ssm.make(name, features=H, kernel_mode=mode, num_layers=2, **OPTS)
              for mode in ("auto", "conv", "scan")}
    x, resets = inputs(0)
    params = jax.jit(models["auto"].init)(jax.random.PRNGKey(0), x, resets)

    def parallel(mode):
        return jax.jit(lambda c, x, r: models[mode].apply(params, c, x, r, method="scan"))

    runs = {mode: parallel(mode) for mode in models}
    runs["step"] = jax.jit(lambda c, x, r: step_mode_outputs(models["auto"], params, x, r, c))
    return models["auto"], runs


def bare_layer(name, **kw):
    if name == "s4":
        return S4Layer(features=H, **OPTS, **kw)
    return S4DLayer(features=H, **OPTS, **kw)


def random_carry(layer, seed):
    shape = layer.initialize_carry(B).shape
    kr, ki = jax.random.split(jax.random.PRNGKey(seed))
    return (0.5 * (jax.random.normal(kr, shape) + 1j * jax.random.normal(ki, shape))).astype(jnp.complex64)


@pytest.mark.parametrize("name", NAMES)
def test_conv_equals_recurrence_with_carry(name):
    model, runs = stacked(name)
    x0, no_resets = inputs(1)
    x, _ = inputs(2)
    carry, _ = runs["scan"](model.initialize_carry(B), x0, no_resets)
    c_conv, y_conv = runs["conv"](carry, x, no_resets)
    c_scan, y_scan = runs["scan"](carry, x, no_resets)
    c_auto, y_auto = runs["auto"](carry, x, no_resets)
    assert_close(y_conv, y_scan)
    assert_close(c_conv, c_scan)
    assert_close((c_auto, y_auto), (c_conv, y_conv), tol=1e-6)  # auto takes the convolution here
    # The carry really matters.
    _, y_fresh = runs["conv"](model.initialize_carry(B), x, no_resets)
    assert not np.allclose(y_conv[0], y_fresh[0], atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["conv", "scan"])
def test_bare_layer_conv_and_scan_match_steps(name, mode):
    layer = bare_layer(name, kernel_mode=mode)
    x, no_resets = inputs(3)
    params = layer.init(jax.random.PRNGKey(1), x, no_resets)
    carry = random_carry(layer, 4)
    c_par, y_par = jax.jit(lambda c: layer.apply(params, c, x, no_resets, method="scan"))(carry)
    c_step, y_step = jax.jit(lambda c: step_mode_outputs(layer, params, x, no_resets, c))(carry)
    assert y_par.shape == (T, B, H) and y_par.dtype == jnp.float32
    assert_close(y_par, y_step)
    assert_close(c_par, c_step)


@pytest.mark.parametrize("name", NAMES)
def test_parallel_equals_step_with_resets(name):
    model, runs = stacked(name)
    x, resets = inputs(5, reset_prob=0.15)
    carry, _ = runs["scan"](model.initialize_carry(B), inputs(6)[0], jnp.zeros((T, B), bool))
    c_par, y_par = runs["auto"](carry, x, resets)
    c_step, y_step = runs["step"](carry, x, resets)
    assert_close(y_par, y_step)
    assert_close(c_par, c_step)


@pytest.mark.parametrize("name", NAMES)
def test_reset_splits_episodes(name):
    """A window with a reset (recurrence) == each episode alone from fresh (convolution)."""
    model, runs = stacked(name)
    x, no_resets = inputs(7)
    cut = 9
    fresh = model.initialize_carry(B)
    stale, _ = runs["scan"](fresh, inputs(8)[0], no_resets)
    _, y_joined = runs["auto"](stale, x, no_resets.at[cut].set(True).at[0].set(True))
    _, y_first = runs["auto"](fresh, x.at[cut:].set(0.0), no_resets)
    _, y_second = runs["auto"](fresh, jnp.roll(x, -cut, axis=0), no_resets)
    assert_close(y_joined[:cut], y_first[:cut])
    assert_close(y_joined[cut:], y_second[: T - cut])


def test_initialize_carry_on_unbound_modules():
    assert S4Layer(features=H, state_size=N).initialize_carry(B).shape == (B, H, N)
    assert S4DLayer(features=H, state_size=N).initialize_carry(B).shape == (B, H, N // 2)
    carry = ssm.make("s4d", features=H, num_layers=2, state_size=N).initialize_carry(B)
    assert len(carry) == 2 and carry[0].dtype == jnp.complex64


def test_s4_initial_system_is_stable_and_bilinear():
    layer = S4Layer(features=H, **OPTS)
    params = layer.init(jax.random.PRNGKey(0), *inputs(0))
    assert np.all(np.asarray(layer.apply(params, method="eigenvalues")).real < 0)
    a = np.asarray(layer.apply(params, method="state_matrix"), np.complex128)
    assert np.all(np.linalg.eigvals(a).real < 0)
    # Same spectrum as HiPPO-LegS (eigenvalues -1, ..., -N); LegS is far from normal, so its eigenvalues
    # are ill-conditioned and the float32 parameters move them by ~1e-3.
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(a[0]).real), -np.arange(N, 0, -1), atol=2e-2)
    a_bar, b_bar, _ = layer.apply(params, method="_discrete")
    dt = np.exp(np.asarray(params["params"]["log_dt"]))
    b = np.asarray(params["params"]["b_re"]) + 1j * np.asarray(params["params"]["b_im"])
    eye = np.eye(N)
    for h in range(H):
        lhs = eye - dt[h] / 2 * a[h]
        np.testing.assert_allclose(a_bar[h], np.linalg.solve(lhs, eye + dt[h] / 2 * a[h]), atol=1e-5)
        np.testing.assert_allclose(b_bar[h], np.linalg.solve(lhs, dt[h] * b[h]), atol=1e-5)
    assert np.all(np.abs(np.linalg.eigvals(np.asarray(a_bar, np.complex128))) < 1)


def test_matrix_power():
    a = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 3)) / 3
    for n in (0, 1, 5, 16):
        expected = np.stack([np.linalg.matrix_power(np.asarray(m, np.float64), n) for m in a])
        np.testing.assert_allclose(matrix_power(a, n), expected, atol=1e-5)


@pytest.mark.parametrize("init", ["legs", "lin", "inv"])
def test_s4d_inits(init):
    lam, b = s4d_init(init, N)
    assert lam.shape == b.shape == (N // 2,)
    assert np.all(lam.real < 0) and np.all(lam.imag >= 0)
    if init == "lin":
        np.testing.assert_allclose(lam.imag, np.pi * np.arange(N // 2))
    layer = S4DLayer(features=H, init_scheme=init, **OPTS)
    x, resets = inputs(9, reset_prob=0.2)
    params = layer.init(jax.random.PRNGKey(0), x, resets)
    assert np.all(np.asarray(layer.apply(params, method="eigenvalues")).real < 0)
    carry = random_carry(layer, 10)
    c_par, y_par = jax.jit(lambda c: layer.apply(params, c, x, resets, method="scan"))(carry)
    c_step, y_step = jax.jit(lambda c: step_mode_outputs(layer, params, x, resets, c))(carry)
    assert_close(y_par, y_step)
    assert_close(c_par, c_step)
    # The registry accepts the option too.
    assert ssm.make("s4d", features=H, init=init, state_size=N).layers[0].layer.init_scheme == init


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["conv", "scan"])
def test_gradients_finite_on_long_sequence(name, mode):
    layer = (S4Layer if name == "s4" else S4DLayer)(features=2, state_size=4, kernel_mode=mode)
    x = jax.random.normal(jax.random.PRNGKey(0), (LONG, 1, 2))
    resets = jnp.zeros((LONG, 1), bool)
    params = layer.init(jax.random.PRNGKey(1), x[:2], resets[:2])

    @jax.jit
    def grads(params):
        def loss(params):
            carry, y = layer.apply(params, layer.initialize_carry(1), x, resets, method="scan")
            return jnp.mean(y ** 2) + jnp.mean(jnp.abs(carry) ** 2)

        return jax.grad(loss)(params)

    g = jax.tree_util.tree_leaves(grads(params))
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in g)
    assert any(np.any(np.asarray(leaf) != 0) for leaf in g)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="kernel_mode"):
        ssm.make("s4", features=H, kernel_mode="fft")
    with pytest.raises(ValueError, match="init"):
        ssm.make("s4d", features=H, init="random")
    with pytest.raises(ValueError, match="even"):
        ssm.make("s4d", features=H, state_size=7)
