"""Each newer memory model against its own definition: LRU's eigenvalue ring, minGRU and gated linear
attention against naive references, the transformer's episode-bounded and window-bounded attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl import ssm
from ssmrl.ssm.linear_attention import gated_linear_attention
from ssmrl.ssm.lru import LRULayer, eigenvalues
from ssmrl.ssm.mingru import MinGRU

T, B, H = 12, 2, 6


def _x(seed, shape=(T, B, H)):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def test_lru_eigenvalues_start_on_the_ring_and_stay_inside_the_unit_circle():
    layer = LRULayer(features=H, state_size=256, r_min=0.5, r_max=0.8, max_phase=1.0)
    params = layer.init(jax.random.PRNGKey(0), _x(0), jnp.zeros((T, B), bool))["params"]
    lam = np.asarray(eigenvalues(params["nu_log"], params["theta_log"]))
    modulus, phase = np.abs(lam), np.angle(lam)
    assert modulus.min() >= 0.5 - 1e-6 and modulus.max() <= 0.8 + 1e-6
    assert modulus.min() < 0.55 and modulus.max() > 0.75  # the whole ring is used, not one radius
    assert phase.min() >= 0.0 and phase.max() <= 1.0 + 1e-6
    np.testing.assert_allclose(np.exp(params["gamma_log"]), np.sqrt(1.0 - modulus**2), rtol=1e-5)
    # The exponential parametrisation keeps |λ| = exp(-exp(ν)) < 1 for any real ν (up to float32 rounding).
    wild = np.abs(np.asarray(eigenvalues(jnp.array([-30.0, -5.0, 0.0, 4.0]), jnp.array([-3.0, 0.0, 2.0, 9.0]))))
    assert np.all(wild <= 1.0 + 1e-6) and np.all(wild[1:] < 1.0)


def test_mingru_equals_a_sequential_loop():
    layer = MinGRU(features=H)
    x = _x(1, (T, B, 3))
    resets = jnp.zeros((T, B), bool).at[5, 0].set(True)
    h0 = _x(2, (B, H))
    params = layer.init(jax.random.PRNGKey(0), x, resets)
    _, y = layer.apply(params, h0, x, resets, method="scan")
    w, b = (np.asarray(params["params"]["proj"][n]) for n in ("kernel", "bias"))
    h, expected = np.asarray(h0), []
    for t in range(T):
        gate, cand = np.split(np.asarray(x[t]) @ w + b, 2, axis=-1)
        z = 1.0 / (1.0 + np.exp(-gate))
        h = np.where(np.asarray(resets[t])[:, None], 0.0, h)
        h = (1.0 - z) * h + z * cand
        expected.append(h)
    np.testing.assert_allclose(np.asarray(y), np.stack(expected), atol=1e-5)


def test_gated_linear_attention_equals_the_quadratic_form():
    """o_t = Σ_{s<=t in t's episode} (q_t ⊙ Π_{r=s+1..t} α_r)·k_s v_s, plus the decayed carry before any reset."""
    heads, dk, dv = 2, 3, 4
    ks = jax.random.split(jax.random.PRNGKey(3), 5)
    q, k = (jax.random.normal(kk, (T, B, heads, dk)) for kk in ks[:2])
    v = jax.random.normal(ks[2], (T, B, heads, dv))
    log_decay = jax.nn.log_sigmoid(jax.random.normal(ks[3], (T, B, heads, dk)))
    s0 = jax.random.normal(ks[4], (B, heads, dk, dv))
    resets = np.zeros((T, B), bool)
    resets[4, 1] = resets[9, 1] = True
    _, o = gated_linear_attention(q, k, v, log_decay, jnp.asarray(resets), s0)
    q, k, v, ld, s0 = (np.asarray(a, np.float64) for a in (q, k, v, log_decay, s0))
    expected = np.zeros((T, B, heads, dv))
    for b in range(B):
        seg = np.cumsum(resets[:, b])
        for t in range(T):
            for s in range(t + 1):
                if seg[s] == seg[t]:
                    decay = np.exp(ld[s + 1:t + 1, b].sum(0))  # [heads, dk]
                    score = (q[t, b] * decay * k[s, b]).sum(-1)  # [heads]
                    expected[t, b] += score[:, None] * v[s, b]
            if seg[t] == 0:
                decay = np.exp(ld[:t + 1, b].sum(0))
                expected[t, b] += np.einsum("hk,hkv->hv", q[t, b] * decay, s0[b])
    np.testing.assert_allclose(np.asarray(o), expected, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def transformer():
    model = ssm.make("transformer", features=H, num_heads=2, memory=3, num_layers=2)
    params = model.init(jax.random.PRNGKey(0), _x(0), jnp.zeros((T, B), bool))
    run = jax.jit(lambda c, x, r: model.apply(params, c, x, r, method="scan"))
    return model, run


def test_transformer_never_attends_across_a_reset(transformer):
    model, run = transformer
    x = _x(4)
    resets = jnp.zeros((T, B), bool).at[7].set(True)
    _, y = run(model.initialize_carry(B), x, resets)
    _, y_changed = run(model.initialize_carry(B), x.at[:7].add(_x(6)[:7]), resets)
    np.testing.assert_allclose(np.asarray(y[7:]), np.asarray(y_changed[7:]), atol=1e-5)
    assert np.abs(np.asarray(y[:7] - y_changed[:7])).max() > 1e-3


def test_transformer_memory_is_bounded(transformer):
    """Two blocks with a window of 3: step t sees inputs t-6..t only, and the carry has a fixed size."""
    model, run = transformer
    x = _x(5)
    no_resets = jnp.zeros((T, B), bool)
    carry, y = run(model.initialize_carry(B), x, no_resets)
    # Not a constant shift: the pre-norm LayerNorms would remove it before any attention.
    _, y_changed = run(model.initialize_carry(B), x.at[0].add(_x(6)[0]), no_resets)
    np.testing.assert_allclose(np.asarray(y[7:]), np.asarray(y_changed[7:]), atol=1e-5)
    assert np.abs(np.asarray(y[6] - y_changed[6])).max() > 1e-4
    shapes = jax.tree_util.tree_map(jnp.shape, carry)
    assert shapes == jax.tree_util.tree_map(jnp.shape, model.initialize_carry(B))
    assert shapes[0]["k"] == (B, 3, 2, H // 2)


@pytest.mark.parametrize("name", ["linear_attention", "transformer"])
def test_heads_must_split_the_width(name):
    model = ssm.make(name, features=6, num_heads=4)
    with pytest.raises(ValueError, match=r"features \(6\) must be divisible by num_heads \(4\)"):
        model.init(jax.random.PRNGKey(0), jnp.zeros((2, 1, 6)), jnp.zeros((2, 1), bool))
