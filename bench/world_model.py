"""World-model update and imagination time per backbone at Drama size, on whatever JAX runs on.

    python bench/world_model.py                                 # drama, s4wm, rssm; batch 16x128, 1024x16
    python bench/world_model.py --batch 4 --batch-length 32 --starts 256   # the 2-core CPU setting
    python bench/world_model.py --models drama --networks subpixel/matmul --precisions f32 bf16

``update``: one jitted world-model gradient step (loss, grads, Adam) on a batch ``B x T`` of 64x64
frames, once per image-network variant ``decoder/conv_weight_grad``: ``subpixel/matmul`` (the default),
``conv_transpose/xla`` (the original networks: the baseline) and ``subpixel/xla`` (the sub-pixel decoder
alone); each ratio is a variant's time over the default's, in this process. ``imagine``: one jitted rollout of the
policy in the model from ``N`` starts for ``H`` steps (sequence steps, prior samples, reward and
continue heads; no gradients, no decoder). FLOPs: XLA's ``cost_analysis`` (a loop body counted once)
and the matmul + conv FLOPs with loop bodies counted per iteration (bench/hlo_flops.py), the latter
over the time as GFLOP/s and as a fraction of a 2048x2048 f32 matmul's rate measured first, in this
process. Memory is XLA's compiled estimate (arguments + outputs + temporaries). ``--precisions f32 bf16``: the
update (first networks variant) and imagination again with the dense layers' matmuls in bf16 (the config's
``precision``; the convs stay f32), each over the first precision's time, in this process.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hlo_flops import loop_aware_flops, matmul_peak  # the sibling script module: bench/ is the script's path entry

from ssmrl.agents.params import count_params
from ssmrl.agents.world_model.agent import build, init_params
from ssmrl.agents.world_model.behavior import actor_policy, imagine
from ssmrl.agents.world_model.config import MODEL_DEFAULTS, WorldModelConfig
from ssmrl.agents.world_model.world_model import world_model_loss
from ssmrl.ssm.precision import PRECISIONS, matmul_precision


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


def xla_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def measure(compiled, *args, repeats: int) -> dict:
    """Time, memory and FLOPs (XLA's and loop-aware) of one compiled call."""
    seconds = timed(compiled, *args, repeats=repeats)
    flops = loop_aware_flops(compiled.as_text())
    return {"s": seconds, "mb": peak_mb(compiled), "xla_gflop": xla_flops(compiled) / 1e9, "gflop": flops / 1e9,
            "gflops": flops / seconds / 1e9}


def world_model_config(model: str, networks: str, batch: int, length: int, starts: int, horizon: int, **overrides):
    """Drama size (the ``WorldModelConfig`` defaults) unless ``overrides`` say otherwise; ``networks`` is
    ``decoder/conv_weight_grad``."""
    decoder, weight_grad = networks.split("/")
    values = dict(model=model, **MODEL_DEFAULTS[model], batch_size=batch, batch_length=length,
                  imag_batch=starts, horizon=horizon, decoder=decoder, conv_weight_grad=weight_grad)
    return WorldModelConfig(**{**values, **overrides})


def bench_update(model: str, networks: str, batch: int, length: int, repeats: int, **overrides) -> dict:
    config = world_model_config(model, networks, batch, length, 1, 1, **overrides)
    parts = build(config, num_actions=6)
    params = init_params(parts, jax.random.PRNGKey(0))["wm"]
    rng = np.random.default_rng(0)
    data = {"obs": jnp.asarray(rng.integers(0, 256, (length, batch, 64, 64, 3)), jnp.uint8),
            "action": jnp.asarray(rng.integers(0, 6, (length, batch)), jnp.int32),
            "reward": jnp.asarray(rng.normal(size=(length, batch)), jnp.float32),
            "term": jnp.zeros((length, batch), bool),
            "first": jnp.asarray(rng.random((length, batch)) < 0.01).at[0].set(True)}
    opt = parts.wm_tx.init(params)

    def update(wm_params, opt, data, key):
        with matmul_precision(config.precision):
            (loss, _), grads = jax.value_and_grad(world_model_loss, has_aux=True)(wm_params, parts.wm, config, data,
                                                                                  key)
        updates, opt = parts.wm_tx.update(grads, opt, wm_params)
        return optax.apply_updates(wm_params, updates), opt, loss

    key = jax.random.PRNGKey(1)
    t0 = time.perf_counter()
    compiled = jax.jit(update).lower(params, opt, data, key).compile()
    return {"compile_s": time.perf_counter() - t0, "params_wm": count_params(params),
            **measure(compiled, params, opt, data, key, repeats=repeats)}


def bench_imagine(model: str, starts: int, horizon: int, repeats: int, precision: str = "f32", **overrides) -> dict:
    config = world_model_config(model, "subpixel/matmul", 1, 1, starts, horizon, precision=precision, **overrides)
    parts = build(config, num_actions=6)
    params = init_params(parts, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    carry = parts.wm.initialize_carry(starts)
    z0 = jax.nn.one_hot(jnp.asarray(rng.integers(0, config.latent_classes, (starts, config.latent_groups))),
                        config.latent_classes).reshape(starts, -1)
    reset0 = jnp.zeros((starts,), bool)

    def rollout(params, carry, z0, key):
        with matmul_precision(config.precision):
            return imagine(parts.wm, params["wm"], actor_policy(parts.actor, params["actor"]), carry, z0, reset0,
                           horizon, key)

    key = jax.random.PRNGKey(1)
    t0 = time.perf_counter()
    compiled = jax.jit(rollout).lower(params, carry, z0, key).compile()
    return {"compile_s": time.perf_counter() - t0, **measure(compiled, params, carry, z0, key, repeats=repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["drama", "s4wm", "rssm"])
    parser.add_argument("--networks", nargs="+", default=["subpixel/matmul", "conv_transpose/xla", "subpixel/xla"],
                        help="decoder/conv_weight_grad variants: the first is the one measured in full, the others "
                             "only for the update-time ratio")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batch-length", type=int, default=128)
    parser.add_argument("--starts", type=int, default=1024)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--precisions", nargs="+", default=["f32"], choices=PRECISIONS,
                        help="dense-layer precisions: the first is the one measured in full, the others timed "
                             "against it")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    peak = matmul_peak()
    peak_bf16 = matmul_peak(dtype="bf16")
    print(f"matmul peak (2048x2048): f32 {peak:.1f} GFLOP/s, bf16->f32 {peak_bf16:.1f} GFLOP/s", flush=True)
    main_networks, baselines = args.networks[0], args.networks[1:]
    main_precision, precisions = args.precisions[0], args.precisions[1:]
    rows = []
    for model in args.models:
        row = {"model": model}
        for networks in args.networks:
            row[f"update_{networks}"] = bench_update(model, networks, args.batch, args.batch_length, args.repeats,
                                                     precision=main_precision)
            print(json.dumps({"model": model, "networks": networks, **row[f"update_{networks}"]}), flush=True)
        row["imagine"] = bench_imagine(model, args.starts, args.horizon, args.repeats, main_precision)
        print(json.dumps({"model": model, "imagine": row["imagine"]}), flush=True)
        for precision in precisions:
            row[f"update_{precision}"] = bench_update(model, main_networks, args.batch, args.batch_length,
                                                      args.repeats, precision=precision)
            row[f"imagine_{precision}"] = bench_imagine(model, args.starts, args.horizon, args.repeats, precision)
            print(json.dumps({"model": model, "precision": precision, "update": row[f"update_{precision}"],
                              "imagine": row[f"imagine_{precision}"]}), flush=True)
        rows.append(row)
    print(f"\ndevice: {jax.devices()[0].device_kind}; update batch {args.batch}x{args.batch_length} "
          f"(networks {main_networks}), imagination {args.starts}x{args.horizon}, {main_precision}, median of "
          f"{args.repeats} after a warm-up; matmul peak {peak:.1f} GFLOP/s; GFLOP = matmul + conv FLOPs, loop bodies "
          "per iteration "
          "(XLA's cost analysis, loop bodies once, in brackets)")
    print("| model | WM params | update (s) | update GFLOP | update GFLOP/s | % of peak | "
          + "".join(f"x faster than {b} | " for b in baselines)
          + "update mem (MB) | imagine (s) | imagine GFLOP | imagine GFLOP/s | % of peak |")
    print("|---" * (11 + len(baselines)) + "|")
    for r in rows:
        u, im = r[f"update_{main_networks}"], r["imagine"]
        ratios = "".join(f"{r[f'update_{b}']['s'] / u['s']:.1f} ({r[f'update_{b}']['s']:.2f} s) | " for b in baselines)
        print(f"| {r['model']} | {u['params_wm'] / 1e6:.2f}M | {u['s']:.3f} | {u['gflop']:.1f} ({u['xla_gflop']:.1f}) "
              f"| "
              f"{u['gflops']:.1f} | {100 * u['gflops'] / peak:.1f} | {ratios}{u['mb']:.0f} | {im['s']:.3f} | "
              f"{im['gflop']:.1f} ({im['xla_gflop']:.1f}) | {im['gflops']:.1f} | {100 * im['gflops'] / peak:.1f} |")
    if precisions:
        print(f"\n| model | precision | update (s) | x faster than {main_precision} | imagine (s) | x faster than "
              f"{main_precision} | imagine % of the bf16 peak |\n|---|---|---|---|---|---|---|")
        for r in rows:
            u, im = r[f"update_{main_networks}"], r["imagine"]
            for p in precisions:
                up, imp = r[f"update_{p}"], r[f"imagine_{p}"]
                print(f"| {r['model']} | {p} | {up['s']:.3f} | {u['s'] / up['s']:.2f} | {imp['s']:.3f} | "
                      f"{im['s'] / imp['s']:.2f} | {100 * imp['gflops'] / peak_bf16:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"matmul_peak_gflops": peak, "matmul_peak_bf16_gflops": peak_bf16, "args": vars(args),
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
