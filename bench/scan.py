"""Forward+backward time of every sequence layer, parallel mode vs step mode, and peak memory.

    python bench/scan.py                                  # L in 64 256 1024 4096, B=16 H=128 P=64
    python bench/scan.py --lengths 64 256 --models s5 gru  # a subset

"parallel" is the layer's ``scan`` (its fastest path for the backend); "step" loops its ``step``
with ``lax.scan``. ``ratio`` = step time / parallel time, both measured in this process. Memory is
XLA's compiled estimate (arguments + outputs + temporaries) of the gradient function.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from timing import timed  # the sibling script module: bench/ is the script's path entry

from ssmrl import ssm
from ssmrl.ssm.base import step_mode_outputs


def layer_options(name: str, p: int) -> dict:
    """``P`` is the state size of S5/S4/S4D/LRU and the head dim of Mamba-2; Mamba keeps its N=16; minGRU,
    linear attention (4 heads) and the transformer (4 heads, window 64) keep their defaults."""
    return {
        "s5": dict(state_size=p),
        "lru": dict(state_size=p),
        "s4": dict(state_size=p),
        "s4d": dict(state_size=p),
        "mamba": dict(state_size=16),
        "mamba2": dict(head_dim=p, state_size=16),
    }.get(name, {})


def peak_bytes(compiled) -> int:
    stats = compiled.memory_analysis()
    if stats is None:
        return -1
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes)


def bench_layer(name: str, length: int, batch: int, features: int, p: int, repeats: int,
                modes: tuple[str, ...] = ("parallel", "step"), **options) -> dict:
    """One row; ``options`` go to ``ssm.make`` on top of ``layer_options`` (e.g. ``scan_method="sequential"``).
    ``modes=("parallel",)`` leaves out the step mode, which no ``scan_method`` changes."""
    model = ssm.make(name, features=features, **{**layer_options(name, p), **options})
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (length, batch, features))
    resets = jax.random.bernoulli(key, 1.0 / 64, (length, batch))
    params = jax.jit(model.init)(key, x[:2], resets[:2])
    carry = model.initialize_carry(batch)

    def parallel_loss(params, x):
        return jnp.mean(model.apply(params, carry, x, resets, method="scan")[1] ** 2)

    def step_loss(params, x):
        return jnp.mean(step_mode_outputs(model, params, x, resets, carry)[1] ** 2)

    row = {"model": name, "L": length, **options}
    losses = {"parallel": parallel_loss, "step": step_loss}
    for mode in modes:
        grad = jax.jit(jax.grad(losses[mode]))
        t0 = time.perf_counter()
        compiled = grad.lower(params, x).compile()
        row[f"{mode}_compile_s"] = time.perf_counter() - t0
        row[f"{mode}_ms"] = 1e3 * timed(compiled, params, x, repeats=repeats)
        row[f"{mode}_mb"] = peak_bytes(compiled) / 2**20
    if "step" in modes and "parallel" in modes:
        row["ratio"] = row["step_ms"] / row["parallel_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=ssm.available(), choices=ssm.available())
    parser.add_argument("--lengths", nargs="+", type=int, default=[64, 256, 1024, 4096])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--p", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"backend={jax.default_backend()} devices={jax.devices()} B={args.batch} H={args.features} P={args.p}")
    header = (f"{'model':<16} {'L':>5} {'parallel ms':>12} {'step ms':>10} {'ratio':>6} "
              f"{'par MB':>8} {'step MB':>8} {'par compile s':>13} {'step compile s':>14}")
    print(header)
    print("-" * len(header))
    for name in args.models:
        for length in args.lengths:
            r = bench_layer(name, length, args.batch, args.features, args.p, args.repeats)
            print(f"{r['model']:<16} {r['L']:>5} {r['parallel_ms']:>12.1f} {r['step_ms']:>10.1f} {r['ratio']:>6.2f} "
                  f"{r['parallel_mb']:>8.1f} {r['step_mb']:>8.1f} {r['parallel_compile_s']:>13.1f} "
                  f"{r['step_compile_s']:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
