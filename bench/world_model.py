"""World-model update and imagination time per backbone at Drama size, on whatever JAX runs on.

    python bench/world_model.py                                 # drama, s4wm, rssm; batch 16x128, 1024x16
    python bench/world_model.py --batch 4 --batch-length 32 --starts 256   # the 2-core CPU setting
    python bench/world_model.py --models drama --networks subpixel/matmul --precisions f32 bf16
    python bench/world_model.py --agent small atari/Boxing --models drama --agent-seeds 1 4

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
``precision``; the convs stay f32), each over the first precision's time, in this process. ``--agent PRESET ENV``:
instead, a training run's whole agent step (collect, world-model update, imagination starts, imagination,
actor-critic update), whole and piece by piece, and ``--agent-seeds`` agents vmapped in one program against one.
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from hlo_flops import loop_aware_flops, matmul_peak  # sibling script modules: bench/ is the script's path entry
from timing import timed, timed_steps

from ssmrl import envs
from ssmrl.agents.params import count_params
from ssmrl.agents.world_model import replay as rb
from ssmrl.agents.world_model.agent import (
    actor_critic_update,
    agent_update,
    build,
    collect,
    imagination,
    imagination_starts,
    init,
    init_params,
    make_prefill,
    make_update,
    world_model_update,
)
from ssmrl.agents.world_model.config import MODEL_DEFAULTS, PRESETS, WorldModelConfig, preset, validate
from ssmrl.ssm.precision import PRECISIONS


def peak_mb(compiled) -> float:
    stats = compiled.memory_analysis()
    if stats is None:
        return float("nan")
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes) / 2**20


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
    update = functools.partial(world_model_update, parts)

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
        return imagination(parts, params["wm"], params["actor"], carry, z0, reset0, key)

    key = jax.random.PRNGKey(1)
    t0 = time.perf_counter()
    compiled = jax.jit(rollout).lower(params, carry, z0, key).compile()
    return {"compile_s": time.perf_counter() - t0, **measure(compiled, params, carry, z0, key, repeats=repeats)}


def agent_config(preset_name: str, env_name: str, model: str, **overrides) -> WorldModelConfig:
    """``preset_name``: a preset (``PRESETS``) or ``atari100k`` (the ``WorldModelConfig`` defaults, Drama size)."""
    if preset_name == "atari100k":
        return validate(WorldModelConfig(**{**MODEL_DEFAULTS[model], "model": model, "env_name": env_name,
                                            **overrides}))
    return validate(preset(preset_name, env_name=env_name, model=model, **overrides))


def bench_agent(config: WorldModelConfig, seeds: list[int], repeats: int) -> dict:
    """One agent step of a training run (``agent_update``: collect ``train_every`` env steps, a world-model update,
    imagination from fresh context windows, an actor-critic update) after a prefill, timed whole and piece by piece
    for one seed, and whole for each ``n`` of ``seeds`` > 1 agents vmapped in one program (their own weights, replay
    and envs: what training seeds together in one process would run). ``ms_per_env_step``: per env step of each
    seed (an update takes ``train_every x num_envs`` of them).

    The pieces are timed apart, each on its own inputs, so they need not add up to the whole (XLA fuses across
    them in the whole step)."""
    c = config
    parts = build(c)
    prefill = jax.jit(make_prefill(parts))
    states = [prefill(init(parts, jax.random.PRNGKey(seed)))[0] for seed in range(max(seeds))]
    state = states[0]
    update = make_update(parts)
    t0 = time.perf_counter()
    compiled = update.lower(state).compile()
    row = {"model": c.model, "env": c.env_name, "params_wm": count_params(state.params["wm"]),
           "env_steps_per_update": c.steps_per_update, "compile_s": time.perf_counter() - t0,
           "gflop": loop_aware_flops(compiled.as_text()) / 1e9}
    # the pieces read the state before the whole step donates it
    _, batch = rb.sample(state.replay, jax.random.PRNGKey(1), c.batch_size, c.batch_length, c.sampler,
                         c.dfs_temperature)
    _, context = rb.sample(state.replay, jax.random.PRNGKey(2), c.imag_batch, c.imag_context, c.sampler,
                           c.dfs_temperature, imagination=True)
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    params, opt = state.params, state.opt

    def piece(name: str, fn, *args):
        """Compile and time one piece; its output feeds the next."""
        compiled = jax.jit(functools.partial(fn, parts)).lower(*args).compile()
        row[f"{name}_ms"] = 1e3 * timed(compiled, *args, repeats=repeats)
        return compiled(*args)

    piece("world_model_update", world_model_update, params["wm"], opt["wm"], batch, keys[0])
    carry, z0 = piece("imagination_starts", imagination_starts, params["wm"], context, keys[0], keys[1])
    traj = piece("imagine", imagination, params["wm"], params["actor"], carry, z0, context["first"][-1], keys[2])
    piece("actor_critic_update", actor_critic_update, params, opt, traj, state.return_scale)
    collect_steps = jax.jit(lambda s: collect(parts, s, c.train_every, random_policy=False), donate_argnums=0)
    seconds, states[0] = timed_steps(collect_steps, states[0], repeats)
    row["collect_ms"] = 1e3 * seconds
    one, states[0] = timed_steps(compiled, states[0], repeats)
    row.update(ms=1e3 * one, ms_per_env_step=1e3 * one / c.steps_per_update, gflops=row["gflop"] / one)
    for n in (n for n in seeds if n > 1):
        stacked = jax.tree.map(lambda *x: jnp.stack(x), *states[:n])
        many = jax.jit(jax.vmap(functools.partial(agent_update, parts)), donate_argnums=0)
        seconds, _ = timed_steps(many, stacked, repeats)
        row[f"seeds_{n}"] = {"ms": 1e3 * seconds, "time_vs_1_seed": seconds / one,
                             "ms_per_env_step": 1e3 * seconds / (n * c.steps_per_update)}
    return row


AGENT_PIECES = ("collect", "world_model_update", "imagination_starts", "imagine", "actor_critic_update")


def agent_table(args) -> None:
    peak = matmul_peak()
    rows = []
    for model in args.models:
        row = bench_agent(agent_config(*args.agent, model), args.agent_seeds, max(args.repeats, 3))
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\ndevice: {jax.devices()[0].device_kind}; preset {args.agent[0]} on {args.agent[1]}; ms: median after a "
          f"warm-up; matmul peak {peak:.1f} GFLOP/s; pieces timed apart (XLA fuses across them in the whole step)")
    many = [n for n in args.agent_seeds if n > 1]
    print("| model | WM params | agent update (ms) | per env step (ms) | GFLOP | % of peak |"
          + "".join(f" {p} (ms) |" for p in AGENT_PIECES) + "".join(f" {n} seeds vmapped: x one seed's time |"
                                                                  for n in many))
    print("|---" * (6 + len(AGENT_PIECES) + len(many)) + "|")
    for r in rows:
        print(f"| {r['model']} | {r['params_wm']:,} | {r['ms']:.1f} | {r['ms_per_env_step']:.2f} | {r['gflop']:.2f} "
              f"| {100 * r['gflops'] / peak:.1f} |" + "".join(f" {r[p + '_ms']:.1f} |" for p in AGENT_PIECES)
              + "".join(f" {r[f'seeds_{n}']['time_vs_1_seed']:.2f} |" for n in many))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"matmul_peak_gflops": peak, "args": vars(args), "rows": rows}, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODEL_DEFAULTS), choices=list(MODEL_DEFAULTS))
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
    parser.add_argument("--agent", nargs=2, default=None, metavar=("PRESET", "ENV"),
                        help="instead: one agent step of a training run with a preset (" + ", ".join(PRESETS)
                             + ", atari100k) on an env, whole and piece by piece, for each of --models")
    parser.add_argument("--agent-seeds", nargs="+", type=int, default=[1],
                        help="with --agent: also time this many agents vmapped in one program (e.g. 1 4)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    if args.agent is not None:
        if args.agent[0] not in (*PRESETS, "atari100k"):
            parser.error(f"unknown preset {args.agent[0]!r}; valid: {[*PRESETS, 'atari100k']}")
        if args.agent[1] not in envs.available():
            parser.error(f"unknown env {args.agent[1]!r}; valid: {envs.available()}")
        if min(args.agent_seeds) < 1:
            parser.error(f"--agent-seeds must be positive, got {args.agent_seeds}")
        return agent_table(args)
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
