"""World-model update and imagination time per backbone at Drama size, on whatever JAX runs on.

    python bench/world_model.py                                 # drama, s4wm, rssm; batch 16x128, 1024x16
    python bench/world_model.py --models drama --batch-length 64 --repeats 3

``update``: one jitted world-model gradient step (loss, grads, Adam) on a batch ``B x T`` of 64x64
frames. ``imagine``: one jitted rollout of the policy in the model from ``N`` starts for ``H`` steps
(sequence steps, prior samples, reward and continue heads; no gradients). Memory is XLA's compiled
estimate (arguments + outputs + temporaries). Ratios are against the first model, in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.params import count_params  # noqa: E402
from agents.world_model.agent import build, init_params  # noqa: E402
from agents.world_model.behavior import imagine  # noqa: E402
from agents.world_model.config import WorldModelConfig  # noqa: E402
from agents.world_model.world_model import world_model_loss  # noqa: E402


def peak_mb(compiled) -> float:
    stats = compiled.memory_analysis()
    if stats is None:
        return float("nan")
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes) / 2**20


def timed(compiled, *args, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench(model: str, batch: int, length: int, starts: int, horizon: int, repeats: int) -> dict:
    config = WorldModelConfig(model=model, state_size=64 if model == "s4wm" else 16, batch_size=batch,
                              batch_length=length, imag_batch=starts, horizon=horizon)
    parts = build(config, num_actions=6)
    key = jax.random.PRNGKey(0)
    params = init_params(parts, key)  # jitted inside
    rng = np.random.default_rng(0)
    data = {"obs": jnp.asarray(rng.integers(0, 256, (length, batch, 64, 64, 3)), jnp.uint8),
            "action": jnp.asarray(rng.integers(0, 6, (length, batch)), jnp.int32),
            "reward": jnp.asarray(rng.normal(size=(length, batch)), jnp.float32),
            "term": jnp.zeros((length, batch), bool),
            "first": jnp.asarray(rng.random((length, batch)) < 0.01).at[0].set(True)}
    opt = parts.wm_tx.init(params["wm"])

    def update(wm_params, opt, data, key):
        (loss, _), grads = jax.value_and_grad(world_model_loss, has_aux=True)(wm_params, parts.wm, config, data, key)
        updates, opt = parts.wm_tx.update(grads, opt, wm_params)
        return optax.apply_updates(wm_params, updates), opt, loss

    row = {"model": model, "params_wm": count_params(params["wm"])}
    t0 = time.perf_counter()
    compiled = jax.jit(update).lower(params["wm"], opt, data, key).compile()
    row["update_compile_s"] = time.perf_counter() - t0
    row["update_s"] = timed(compiled, params["wm"], opt, data, key, repeats=repeats)
    row["update_mb"] = peak_mb(compiled)
    del compiled, data

    carry = parts.wm.initialize_carry(starts)
    z0 = jax.nn.one_hot(jnp.asarray(rng.integers(0, 32, (starts, 32))), 32).reshape(starts, -1)
    reset0 = jnp.zeros((starts,), bool)

    def rollout(params, carry, z0, key):
        return imagine(parts.wm, params["wm"], parts.actor, params["actor"], carry, z0, reset0, horizon, key)

    t0 = time.perf_counter()
    compiled = jax.jit(rollout).lower(params, carry, z0, key).compile()
    row["imagine_compile_s"] = time.perf_counter() - t0
    row["imagine_s"] = timed(compiled, params, carry, z0, key, repeats=repeats)
    row["imagine_mb"] = peak_mb(compiled)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["drama", "s4wm", "rssm"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batch-length", type=int, default=128)
    parser.add_argument("--starts", type=int, default=1024)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    rows = []
    for model in args.models:
        rows.append(bench(model, args.batch, args.batch_length, args.starts, args.horizon, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    print(f"\ndevice: {jax.devices()[0].device_kind}; update batch {args.batch}x{args.batch_length}, "
          f"imagination {args.starts}x{args.horizon}, median of {args.repeats} after a warm-up")
    print("| model | WM params | update (s) | update ratio | update mem (MB) | imagine (s) | imagine ratio "
          "| imagine mem (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params_wm'] / 1e6:.2f}M | {r['update_s']:.2f} | "
              f"{r['update_s'] / base['update_s']:.2f} | {r['update_mb']:.0f} | {r['imagine_s']:.3f} | "
              f"{r['imagine_s'] / base['imagine_s']:.2f} | {r['imagine_mb']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
