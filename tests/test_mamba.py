"""Mamba and Mamba-2 layers: two modes agree, resets isolate episodes (conv buffer included), carries
are honoured, and the Mamba-2 chunked SSD scan matches the per-step recurrences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import ssm
from ssmrl.ssm.base import step_mode_outputs
from ssmrl.ssm.mamba import MambaLayer, causal_conv, causal_conv_step
from ssmrl.ssm.mamba2 import Mamba2Layer
from ssmrl.ssm.ssd import ssd_chunked, ssd_recurrence

T, B, H, N, K = 20, 2, 8, 4, 4  # T is deliberately not a multiple of the chunk (8)
OPTS = {
    "mamba": dict(state_size=N, conv_size=K),
    "mamba2": dict(state_size=N, conv_size=K, head_dim=4, chunk_size=8),
}
ATOL = 1e-5


def _close(a, b, atol=ATOL):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=atol, rtol=1e-4)


def _random_carry(model, key):
    carry = model.initialize_carry(B)
    leaves, tree = jax.tree_util.tree_flatten(carry)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(tree, [jax.random.normal(k, c.shape) for k, c in zip(keys, leaves)])


class Harness:
    """One model, its params and jitted parallel / step functions (compiled once per module)."""

    def __init__(self, model):
        self.model = model
        x = jnp.zeros((T, B, H))
        self.params = jax.jit(model.init)(jax.random.PRNGKey(0), x, jnp.zeros((T, B), bool))
        self.scan = jax.jit(lambda p, c, x, r: model.apply(p, c, x, r, method="scan"))
        self.steps = jax.jit(lambda p, c, x, r: step_mode_outputs(model, p, x, r, carry=c))


@pytest.fixture(scope="module", params=["mamba", "mamba2"])
def harness(request):
    return Harness(ssm.make(request.param, features=H, **OPTS[request.param]))


@pytest.fixture(scope="module")
def data():
    kx, kr, kc = jax.random.split(jax.random.PRNGKey(1), 3)
    x = jax.random.normal(kx, (T, B, H))
    resets = jax.random.bernoulli(kr, 0.2, (T, B)).at[0].set(False)  # keep the incoming carry alive
    return x, resets, kc


def test_parallel_matches_step_from_nonzero_carry(harness, data):
    x, resets, kc = data
    carry = _random_carry(harness.model, kc)
    c_par, y_par = harness.scan(harness.params, carry, x, resets)
    c_step, y_step = harness.steps(harness.params, carry, x, resets)
    _close(y_par, y_step)
    _close(c_par, c_step)
    # the incoming carry matters (it is not silently ignored)
    _, y_fresh = harness.scan(harness.params, harness.model.initialize_carry(B), x, resets)
    assert np.abs(np.asarray(y_fresh[:2] - y_par[:2])).max() > 1e-4


def test_split_sequence_carries_state_and_conv(harness, data):
    x, resets, kc = data
    carry = _random_carry(harness.model, kc)
    c_full, y_full = harness.scan(harness.params, carry, x, resets)
    s = T // 2  # both halves share one extra compiled shape
    c_mid, y1 = harness.scan(harness.params, carry, x[:s], resets[:s])
    c_end, y2 = harness.scan(harness.params, c_mid, x[s:], resets[s:])
    _close(jnp.concatenate([y1, y2]), y_full)
    _close(c_end, c_full)


def test_reset_isolates_episodes(harness, data):
    x, _, kc = data
    x_a = x
    x_b = jnp.flip(x, axis=0) * 0.7
    cut = 7  # episode a: steps [0, 7); episode b starts at 7
    x_cat = jnp.concatenate([x_a[:cut], x_b[:T - cut]], axis=0)
    resets = jnp.zeros((T, B), bool).at[0].set(True).at[cut].set(True)
    fresh = harness.model.initialize_carry(B)
    no_resets = jnp.zeros((T, B), bool)
    # start the joint run from a random carry: the reset at step 0 must discard it
    _, y_cat = harness.scan(harness.params, _random_carry(harness.model, kc), x_cat, resets)
    _, y_a = harness.scan(harness.params, fresh, x_a, no_resets)
    _, y_b = harness.scan(harness.params, fresh, x_b, no_resets)
    _close(y_cat[:cut], y_a[:cut])
    # steps cut .. cut+K-2 would see episode a through the conv if the buffer leaked
    _close(y_cat[cut:], y_b[:T - cut])


def test_reset_clears_conv_buffer(harness, data):
    x, resets, kc = data
    last = jnp.zeros((T, B), bool).at[T - 1].set(True)
    carry, _ = harness.scan(harness.params, _random_carry(harness.model, kc), x, resets | last)
    conv = np.asarray(carry[0].conv)  # block 0 of the stack
    assert conv.shape[1] == K - 1
    np.testing.assert_array_equal(conv[:, :-1], 0.0)  # inputs before the reset are gone
    assert np.abs(conv[:, -1]).max() > 0  # the reset step's own input stays


def test_gradients_finite(harness, data):
    x, resets, kc = data
    carry = _random_carry(harness.model, kc)

    def loss(p):
        return jnp.sum(harness.model.apply(p, carry, x, resets, method="scan")[1] ** 2)

    grads = jax.jit(jax.grad(loss))(harness.params)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
    assert any(np.abs(np.asarray(g)).max() > 0 for g in leaves)


def test_causal_conv_modes_agree():
    kx, kb, kk = jax.random.split(jax.random.PRNGKey(2), 3)
    x = jax.random.normal(kx, (9, B, 3))
    buf = jax.random.normal(kb, (B, K - 1, 3))
    kernel = jax.random.normal(kk, (K, 3))
    bias = jnp.arange(3.0)
    resets = jnp.zeros((9, B), bool).at[2, 0].set(True).at[7, 1].set(True).at[8, 1].set(True)
    y, new_buf = jax.jit(causal_conv)(x, buf, resets, kernel, bias)

    def body(b, inputs):
        y_t, b = causal_conv_step(inputs[0], b, inputs[1], kernel, bias)
        return b, y_t

    b, ys = jax.jit(lambda b: jax.lax.scan(body, b, (x, resets)))(buf)
    _close(y, ys)
    _close(new_buf, b)
    # right after a reset only the current input (and the bias) enters
    _close(y[2, 0], kernel[-1] * x[2, 0] + bias)


# ----------------------------------------------------------------------------------------------
# Mamba-2 scan paths
# ----------------------------------------------------------------------------------------------

METHODS = ("chunked", "sequential", "associative")


@pytest.fixture(scope="module")
def mamba2_paths():
    layers = {m: Mamba2Layer(features=H, **OPTS["mamba2"], scan_method=m) for m in METHODS}
    init = jax.jit(layers["chunked"].init)
    params = init(jax.random.PRNGKey(3), jnp.zeros((T, B, H)), jnp.zeros((T, B), bool))
    return layers, params


@pytest.mark.parametrize("t_len", [T, 24, 5])  # ragged, a multiple of the chunk, shorter than one
def test_mamba2_paths_agree(mamba2_paths, t_len):
    layers, params = mamba2_paths
    kx, kc = jax.random.split(jax.random.PRNGKey(t_len))
    x = jax.random.normal(kx, (t_len, B, H))
    # resets at a chunk boundary (8), mid-chunk (3, 13) and on the last step of a chunk (15)
    resets = np.zeros((t_len, B), bool)
    for t, b in [(8, 0), (13, 0), (3, 1), (15, 1), (16, 1)]:
        if t < t_len:
            resets[t, b] = True
    carry = _random_carry(layers["chunked"], kc)

    def loss(p, m):
        c, y = layers[m].apply(p, carry, x, jnp.asarray(resets), method="scan")
        return jnp.sum(y ** 2) + jnp.sum(c.state ** 2), (c, y)

    def run(m):
        if t_len != T:  # gradients once (ragged T), forward only for the other lengths
            return None, jax.jit(lambda p: loss(p, m)[1])(params)
        return jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)(params, m)

    out = {m: run(m) for m in METHODS}
    g_ref, (c_ref, y_ref) = out["chunked"]
    for m in METHODS[1:]:
        g, (c, y) = out[m]
        _close(y, y_ref)
        _close(c, c_ref)
        if g is not None:
            _close(g, g_ref, atol=1e-4)


def test_ssd_chunked_strong_decay_and_dense_resets():
    """Large Δ·A (decays down to e^-80 per step) and many resets: finite and equal to the recurrence."""
    ks = jax.random.split(jax.random.PRNGKey(4), 6)
    t_len, heads, p = 19, 2, 3
    x = jax.random.normal(ks[0], (t_len, B, heads, p))
    dt = jax.random.uniform(ks[1], (t_len, B, heads), minval=0.0, maxval=5.0)
    a = -jnp.array([1.0, 16.0])
    b = jax.random.normal(ks[2], (t_len, B, N))
    c = jax.random.normal(ks[3], (t_len, B, N))
    resets = jax.random.bernoulli(ks[4], 0.4, (t_len, B))
    h0 = jax.random.normal(ks[5], (B, heads, p, N))
    recurrence = jax.jit(ssd_recurrence, static_argnames="method")
    h_ref, y_ref = recurrence(x, dt, a, b, c, resets, h0, "sequential")
    chunked = jax.jit(ssd_chunked, static_argnames="chunk_size")
    for q in (1, 4, 8, 64):
        h, y = chunked(x, dt, a, b, c, resets, h0, chunk_size=q)
        assert np.isfinite(np.asarray(y)).all()
        _close(y, y_ref)
        _close(h, h_ref)
    def loss(d):
        return jnp.sum(ssd_chunked(x, d, a, b, c, resets, h0, chunk_size=8)[1] ** 2)

    g = jax.jit(jax.grad(loss))(dt)
    assert np.isfinite(np.asarray(g)).all()


def test_mamba_scan_methods_agree(data):
    x, resets, kc = data
    seq = MambaLayer(features=H, state_size=N, scan_method="sequential")
    par = seq.clone(scan_method="associative")
    params = jax.jit(seq.init)(jax.random.PRNGKey(5), x, resets)
    carry = _random_carry(seq, kc)
    def run(layer):
        return jax.jit(lambda p: layer.apply(p, carry, x, resets, method="scan"))(params)

    _close(run(seq), run(par))


def test_carry_shapes_and_validation():
    assert MambaLayer(features=H, state_size=N).initialize_carry(3).state.shape == (3, 2 * H, N)
    c = Mamba2Layer(features=H, state_size=N, head_dim=64).initialize_carry(3)  # head_dim clipped to 16
    assert c.state.shape == (3, 1, 2 * H, N) and c.conv.shape == (3, 3, 2 * H + 2 * N)
    with pytest.raises(ValueError):
        ssm.make("mamba2", features=H, scan_method="fft")
    with pytest.raises(ValueError):
        Mamba2Layer(features=H, head_dim=5).init(
            jax.random.PRNGKey(0), jnp.zeros((2, 1, H)), jnp.zeros((2, 1), bool))
