"""S5 specifics: HiPPO-N init, discretisations, long-sequence gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.ssm.hippo import block_diagonal_eig, hippo_legs, hippo_low_rank, hippo_normal_eig
from ssmrl.ssm.s5 import S5Layer


def test_hippo_normal_eigendecomposition():
    lam, v = hippo_normal_eig(16)
    p = hippo_low_rank(16)
    s = hippo_legs(16) + np.outer(p, p)
    np.testing.assert_allclose(v @ np.diag(lam) @ v.conj().T, s, atol=1e-9)
    np.testing.assert_allclose(lam.real, -0.5)


@pytest.mark.parametrize("conj_sym", [True, False])
def test_block_diagonal_init_keeps_conjugate_pairs(conj_sym):
    lam, v = block_diagonal_eig(16, 2, conj_sym)
    assert lam.shape == ((8,) if conj_sym else (16,))
    if conj_sym:
        full, _ = hippo_normal_eig(8)
        # every kept eigenvalue's conjugate was dropped, so together they rebuild the block spectrum
        both = np.sort_complex(np.concatenate([lam[:4], lam[:4].conj()]))
        np.testing.assert_allclose(both, np.sort_complex(full), atol=1e-9)


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_initial_eigenvalues_stable_and_gradients_finite_on_4096_steps(discretization):
    layer = S5Layer(features=4, state_size=8, discretization=discretization)
    T, B = 4096, 1
    x = jax.random.normal(jax.random.PRNGKey(0), (T, B, 4))
    resets = jnp.zeros((T, B), bool)
    params = layer.init(jax.random.PRNGKey(1), x, resets)
    p = params["params"]
    assert np.all(np.asarray(p["lambda_re"]) < 0)
    lam = p["lambda_re"] + 1j * p["lambda_im"]
    dt = jnp.exp(p["log_dt"])
    lam_bar = jnp.exp(lam * dt) if discretization == "zoh" else (1 + dt / 2 * lam) / (1 - dt / 2 * lam)
    assert np.all(np.abs(np.asarray(lam_bar)) < 1.0)

    def loss(params):
        y = layer.apply(params, x, resets)
        return jnp.mean(y**2)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(float(value))
    for g in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(np.asarray(g)))
    assert float(jnp.abs(grads["params"]["log_dt"]).sum()) > 0


def test_bad_discretization_names_valid_ones():
    layer = S5Layer(features=4, state_size=8, discretization="euler")
    with pytest.raises(ValueError, match="unknown discretization 'euler'.*zoh"):
        layer.init(jax.random.PRNGKey(0), jnp.zeros((2, 1, 4)), jnp.zeros((2, 1), bool))
