"""The reset-aware recurrence: operator algebra (hypothesis) and the scan methods."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmrl.ssm.scan import SCAN_METHODS, linear_recurrence, reset_operator, resolve_method

element = st.tuples(
    st.floats(-1.5, 1.5, allow_nan=False, width=32),
    st.floats(-3.0, 3.0, allow_nan=False, width=32),
    st.booleans(),
)


def as_arrays(e):
    a, b, d = e
    return jnp.float32(a), jnp.float32(b), jnp.bool_(d)


@settings(max_examples=200, deadline=None)
@given(element, element, element)
def test_operator_is_associative(e1, e2, e3):
    x, y, z = map(as_arrays, (e1, e2, e3))
    left = reset_operator(reset_operator(x, y), z)
    right = reset_operator(x, reset_operator(y, z))
    for u, v in zip(left, right):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(st.lists(element, min_size=1, max_size=12), st.floats(-2.0, 2.0, width=32))
def test_fold_matches_the_recurrence(elements, h0):
    """Folding the operator left to right from the carry element reproduces the plain loop."""
    h = np.float32(h0)
    acc = (jnp.float32(1.0), jnp.float32(h0), jnp.bool_(True))
    for a, b, d in elements:
        h = np.float32(b) if d else np.float32(a) * h + np.float32(b)
        acc = reset_operator(acc, as_arrays((a, b, d)))
        np.testing.assert_allclose(float(acc[1]), h, rtol=1e-4, atol=1e-4)


def test_methods_agree_with_a_python_loop():
    key = jax.random.PRNGKey(0)
    ka, kb, kd, kh = jax.random.split(key, 4)
    T, B, P = 33, 4, 3
    a = jax.random.uniform(ka, (T, B, P), minval=-1.0, maxval=1.0)
    b = jax.random.normal(kb, (T, B, P))
    d = jax.random.bernoulli(kd, 0.2, (T, B))
    h0 = jax.random.normal(kh, (B, P))
    h = np.asarray(h0)
    expected = []
    for t in range(T):
        h = np.where(np.asarray(d[t])[:, None], np.asarray(b[t]), np.asarray(a[t]) * h + np.asarray(b[t]))
        expected.append(h)
    for method in ("associative", "sequential"):
        last, hs = linear_recurrence(a, b, d, h0, method)
        np.testing.assert_allclose(np.asarray(hs), np.stack(expected), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(last), expected[-1], rtol=1e-5, atol=1e-5)


def test_complex_and_broadcast_decay():
    T, B, P = 9, 2, 3
    lam = jnp.array([0.9 + 0.1j, 0.5 - 0.3j, -0.2 + 0.0j], jnp.complex64)
    b = (jnp.arange(T * B * P).reshape(T, B, P) % 5).astype(jnp.complex64)
    d = jnp.zeros((T, B), bool).at[4, 1].set(True)
    h0 = jnp.ones((B, P), jnp.complex64)
    seq = linear_recurrence(lam, b, d, h0, "sequential")
    par = linear_recurrence(lam, b, d, h0, "associative")
    for u, v in zip(seq, par):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-4)


def test_unknown_method_names_valid_ones():
    with pytest.raises(ValueError, match="unknown scan method 'parallel'.*sequential"):
        resolve_method("parallel")
    assert resolve_method("auto") in SCAN_METHODS
