"""precision=bf16 (bf16 matmuls, f32 accumulation): gradients, the two modes, learning; and bench/gpu.py --tiny."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssmrl.agents.ppo.config import PPOConfig, validate
from ssmrl.agents.ppo.train import build
from ssmrl.ssm.precision import bf16_matmul, matmul, matmul_precision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bf16_matmul_gradients_match_f32():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 16))
    w = jax.random.normal(jax.random.PRNGKey(1), (16, 8))
    got = jax.grad(lambda x, w: (bf16_matmul(x, w) ** 2).sum(), argnums=(0, 1))(x, w)
    want = jax.grad(lambda x, w: ((x @ w) ** 2).sum(), argnums=(0, 1))(x, w)
    for g, f in zip(got, want):
        assert g.dtype == jnp.float32
        np.testing.assert_allclose(g, f, atol=0.02 * float(jnp.abs(f).max()))
    assert matmul(x, w).dtype == jnp.float32  # outside a scope: plain f32
    with matmul_precision("bf16"):
        assert "bf16" in jax.jit(matmul).lower(x, w).as_text()
    with pytest.raises(ValueError, match=r"unknown precision 'fp8'; valid: \['f32', 'bf16'\]"):
        with matmul_precision("fp8"):
            pass


@pytest.mark.parametrize("over", ["one", "vmap", "map"])
def test_bf16_weight_gradient_is_the_f32_product_of_the_rounded_operands(over):
    """Through a rebuilt, transposed weight (as S5 and LRU build theirs), alone, vmapped and mapped. bf16 products
    are exact in f32, so the weight gradient is the f32 product of the bf16-rounded operands up to summation order.
    (The PPO programs that once failed on the CPU with these products are in tests/test_seeds.py.)"""
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 8))
    c = jax.random.normal(jax.random.PRNGKey(1), (16, 256)).astype(jnp.bfloat16).astype(jnp.float32)
    ws = jax.random.normal(jax.random.PRNGKey(2), (2, 256, 8))

    def loss(w):  # [256, 8] -> []: y = x @ [w_top; -w_bottom].T, a linear loss so the cotangent is c exactly
        return (bf16_matmul(x, jnp.concatenate([w[:128], -w[128:]], 0).T) * c).sum()

    grad = jax.grad(loss)
    got = {"one": lambda: jax.jit(grad)(ws[0])[None], "vmap": lambda: jax.jit(jax.vmap(grad))(ws),
           "map": lambda: jax.jit(lambda w: jax.lax.map(grad, w))(ws)}[over]()
    rounded = x.astype(jnp.bfloat16).astype(jnp.float32)
    want = (c.T @ rounded) * jnp.concatenate([jnp.ones(128), -jnp.ones(128)])[:, None]  # [256, 8]
    for g in got:
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", ["s5", "gru"])
def test_bf16_network_is_close_to_f32_and_modes_agree(model):
    config = PPOConfig(model=model, features=32, num_layers=1, encoder_hidden=16, head_hidden=16,
                       model_options=(("state_size", 8),) if model == "s5" else (), num_envs=4, num_steps=12)
    f32, bf16 = build(config), build(dataclasses.replace(config, precision="bf16"))
    state = f32.init(jax.random.PRNGKey(0))
    params = state.train_state.params
    x = jax.random.normal(jax.random.PRNGKey(1), (12, 4, f32.obs_dim + f32.actions.dim + 1))
    resets = jnp.zeros((12, 4), bool).at[0].set(True).at[6, 1].set(True)
    carry = f32.network.initialize_carry(4)
    want = f32.network.apply(params, carry, x, resets, method="scan")[1][0]
    got = jax.jit(lambda p: bf16.network.apply(p, carry, x, resets, method="scan"))(params)[1][0]
    np.testing.assert_allclose(got, want, atol=0.05 * float(jnp.abs(want).max()) + 1e-3)

    def step_all(p):
        def body(c, inputs):
            c, (policy, _) = bf16.network.apply(p, c, *inputs, method="step")
            return c, policy
        return jax.lax.scan(body, carry, (x, resets))[1]

    np.testing.assert_allclose(jax.jit(step_all)(params), got, atol=0.02 * float(jnp.abs(got).max()) + 1e-3)


def test_bad_precision_is_rejected():
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'; valid: \['f32', 'bf16'\]"):
        validate(PPOConfig(precision="fp16"))


def run(args, timeout=900, optimised=True):
    env = dict(os.environ)
    if optimised:
        env.pop("XLA_FLAGS", None)  # learning runs want optimised XLA
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_s5_learns_repeat_previous_in_bf16(tmp_path):
    """The CI learning test's S5 run (tests/test_train_ppo_cli.py, > 0.9 in f32) with bf16 matmuls."""
    out = run(["train/ppo.py", "env=popgym", "preset=small", "model=s5", "total_timesteps=300000", "precision=bf16",
               "progress=false", "deterministic_eval=true", f"hydra.run.dir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["precision"] == "bf16"
    assert summary["final_return_mean"] > 0.9, summary


def test_gpu_bench_tiny_writes_json_and_table(tmp_path):
    """bench/gpu.py's scan, PPO and training sections at toy sizes (the world-model and Atari sections: the next
    test). The scan rows go length by length, so a budget cut drops the longest lengths, not whole models."""
    out = run(["bench/gpu.py", "--tiny", "--out", str(tmp_path), "--sections", "scan", "ppo", "train",
               "--ppo-models", "gru"], optimised=False)  # unoptimised XLA: compiles fast; speed is not the point
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert not result["errors"], result["errors"]
    assert [(r["model"], r["L"], r.get("scan_method", "auto")) for r in result["scan"]] == [
        ("s5", 16, "auto"), ("s5", 16, "associative"), ("gru", 16, "auto"),
        ("s5", 64, "auto"), ("s5", 64, "associative"), ("gru", 64, "auto")]
    assert [("step_ms" in r) for r in result["scan"]] == [True, False, True] * 2  # step mode once per model and L
    assert "| s5 | 16 | associative |" in (tmp_path / "gpu.md").read_text()
    assert [(r["model"], r["seeds"]) for r in result["ppo"]] == [("gru", 1), ("gru", 2)]
    assert all(r["steps_per_s"] > 0 and r["gflop_per_update"] > 0 for r in result["ppo"])
    assert result["train"][0]["updates"] == 4
    assert "| gru | f32 | 2 |" in (tmp_path / "gpu.md").read_text()


def test_gpu_bench_tiny_world_model_atari_and_agent(tmp_path):
    """bench/gpu.py's world-model section (update, imagination, the ConvTranspose baseline), its timed Atari run
    with the ALE's XLA backend and its agent section (a training run's agent step piece by piece; agents vmapped) at
    toy sizes: what #11 asks of a GPU, checked on the CPU."""
    out = run(["bench/gpu.py", "--tiny", "--out", str(tmp_path), "--sections", "world_model", "atari", "agent"],
              optimised=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert not result["errors"], result["errors"]
    rows = result["world_model"]
    assert [(r["kind"], r["networks"]) for r in rows] == [
        ("update", "subpixel/matmul"), ("imagine", "subpixel/matmul"), ("update", "conv_transpose/xla")]
    assert rows[2]["x_ours"] == rows[2]["s"] / rows[0]["s"] and rows[1]["starts"] == 8
    (atari,) = result["atari"]
    assert atari["backend"] == "xla" and not atari["errors"], atari["errors"]
    assert len(atari["chunk_s"]) == 2 and atari["s_per_agent_step"] == atari["chunk_s"][1] / 2
    assert atari["atari100k_hours"] > (100_000 - 16) * atari["s_per_agent_step"] / 3600
    table = (tmp_path / "gpu.md").read_text()
    assert "| update | conv_transpose/xla | f32 | 2 x 8 windows |" in table and "one Atari100k game in" in table
    pong, minatar = result["agent"]
    assert (pong["env"], minatar["env"]) == ("atari/Pong", "Breakout-MinAtar")
    for row in (pong, minatar):
        assert all(row[f"{piece}_ms"] > 0 for piece in ("collect", "world_model_update", "imagination_starts",
                                                         "imagine", "actor_critic_update")), row
        assert row["ms_per_env_step"] == row["ms"] / row["env_steps_per_update"] and row["gflop"] > 0
    assert "seeds_2" not in pong and minatar["seeds_2"]["time_vs_1_seed"] == minatar["seeds_2"]["ms"] / minatar["ms"]
    assert "| small | Breakout-MinAtar |" in table and "2: " in table


def test_gru_sequence_backward_matches_autodiff():
    """The GRU's own backward pass (ssm.rnn.gru_sequence) against autodiff of the plain scan, with resets."""
    from ssmrl.ssm.rnn import _gru_gates, gru_sequence

    t, b, f = 9, 3, 5
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    args = (jax.random.normal(k[0], (f, 3 * f)) / 2, jax.random.normal(k[1], (3 * f,)),
            jax.random.normal(k[2], (t, b, 3 * f)), jax.random.normal(k[3], (b, f)))
    resets = jax.random.bernoulli(k[4], 0.3, (t, b))

    def plain(w, bias, xi, h0):
        def body(h, inputs):
            h, _ = _gru_gates(jnp.where(inputs[1][:, None], 0.0, h), inputs[0], w, bias)
            return h, h
        return jax.lax.scan(body, h0, (xi, resets))

    def loss(fn):
        return lambda *a: jnp.sum(jnp.sin(fn(*a)[1])) + jnp.sum(fn(*a)[0] ** 2)

    got = jax.grad(loss(lambda *a: gru_sequence("f32", a[0], a[1], a[2], resets, a[3])), argnums=(0, 1, 2, 3))(*args)
    want = jax.grad(loss(plain), argnums=(0, 1, 2, 3))(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_loop_aware_flops_counts_gpu_library_matmuls():
    """On a GPU, XLA's matmuls are cuBLAS custom-calls; bench/hlo_flops.py counts them like dots."""
    import runpy

    flops = runpy.run_path(os.path.join(ROOT, "bench", "hlo_flops.py"))["loop_aware_flops"]
    hlo = "\n".join([
        "ENTRY %main.1 (param_0: f32[16,256], param_1: f32[256,768]) -> f32[16,768] {",
        "  %param_0 = f32[16,256]{1,0} parameter(0)",
        "  %param_1 = f32[256,768]{1,0} parameter(1)",
        '  %custom-call.3 = (f32[16,768]{1,0}, s8[4194304]{0}) custom-call(f32[16,256]{1,0} %param_0, '
        'f32[256,768]{1,0} %param_1), custom_call_target="__cublas$gemm", backend_config={"gemm_backend_config":'
        '{"dot_dimension_numbers":{"lhs_contracting_dimensions":["1"],"rhs_contracting_dimensions":["0"]}}}',
        "  ROOT %gte = f32[16,768]{1,0} get-tuple-element((f32[16,768]{1,0}, s8[4194304]{0}) %custom-call.3), index=0",
        "}",
    ])
    assert flops(hlo) == 2 * 16 * 256 * 768


def test_loop_aware_flops_counts_a_complex_matmul_as_four_real_ones():
    """A complex dot executes four real products (popjaxrl's S5 multiplies complex ``B̄`` by activations cast to
    complex); the real form of the same numbers (ours: ``[B̄_re; B̄_im] u``) half that, as it skips the zeros."""
    import runpy

    flops = runpy.run_path(os.path.join(ROOT, "bench", "hlo_flops.py"))["loop_aware_flops"]
    b = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 32))
    u = jax.random.normal(jax.random.PRNGKey(1), (32, 16))
    as_complex = jax.jit(lambda b, u: (b[0] + 1j * b[1]) @ u.astype(jnp.complex64)).lower(b, u).compile()
    as_real = jax.jit(lambda b, u: jnp.concatenate([b[0], b[1]], 0) @ u).lower(b, u).compile()
    assert "c64[8,16]" in as_complex.as_text() and " dot(" in as_complex.as_text()
    assert flops(as_complex.as_text()) == 4 * 2 * 8 * 16 * 32
    assert flops(as_real.as_text()) == 2 * 16 * 16 * 32
