"""PPO on POPGym: env-steps/s, FLOPs per update, fraction of the matmul peak, multi-seed cost, compile time.

    python bench/ppo_popgym.py                                  # gru and s5 at popjaxrl's settings, f32
    python bench/ppo_popgym.py --models s5 --precisions f32 bf16 --seeds 8 --breakdown
    python bench/ppo_popgym.py --json out.json                  # also write every row
    python bench/ppo_popgym.py --popjaxrl ~/popjaxrl            # popjaxrl timed in this process (a checkout)

Settings (popjaxrl's, docs/RESULTS.md): RepeatPreviousEasy, 16 envs x 128 steps, 2 epochs x 2
minibatches, paper-sized models as in configs/ppo/model (S5: 4 layers, width 256, state 256; GRU: width
256; transformer: 2 GTrXL blocks, window 64). Every figure is measured in this process:

* ``env-steps/s``: median of ``--repeats`` timed calls of ``--updates`` jitted updates, after a warm-up.
* ``GFLOP/update``: matmul + convolution FLOPs of the compiled update, every loop body (rollout steps,
  epochs, minibatches, the layers' scans) counted per iteration (bench/hlo_flops.py; XLA's own
  ``cost_analysis`` counts a loop body once and is printed in brackets).
* ``% peak``: those FLOPs per second over a 2048x2048 f32 matmul's rate measured first, in this process.
* ``x popjaxrl``: env-steps/s over popjaxrl's at the same settings. With ``--popjaxrl DIR`` (a checkout of its
  repository) popjaxrl's S5 and GRU are timed in this process just before ours (bench/popjaxrl_baseline.py);
  without it the ratio is over constants measured on issue #14's CPU (S5 2,708, GRU 5,064), which say something
  only on that CPU (on a Zen 4 EPYC popjaxrl ran S5 2,910-3,290 and GRU 6,280-7,470: docs/RESULTS.md).
* ``N seeds``: time of N seeds over the time of one (<= N means seeds scale linearly or better), run as training
  runs them (``experiment.seeds``: one after another on the CPU, vmapped elsewhere), and the same ratio with the
  seeds vmapped, the baseline.
* ``--breakdown``: the update timed again with no epochs: that is the rollout (with GAE), the rest of the
  update's time the minibatch gradients (timed directly: a difference of two longer timings drowns in a noisy
  host's spread).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
from hlo_flops import loop_aware_flops, matmul_peak  # sibling script modules: bench/ is the script's path entry
from popjaxrl_baseline import MODELS as POPJAXRL_MODELS
from popjaxrl_baseline import bench_popjaxrl, check_checkout, check_env
from popjaxrl_baseline import load as load_popjaxrl
from timing import timed_steps

from ssmrl import envs
from ssmrl.agents.params import count_params
from ssmrl.agents.ppo.config import PPOConfig, validate
from ssmrl.agents.ppo.train import build
from ssmrl.experiment.ppo import seeds_chunk
from ssmrl.experiment.seeds import SeedMethod, over_seeds, resolve_seed_method
from ssmrl.ssm.precision import PRECISIONS

PAPER_MODELS = {
    "s5": dict(num_layers=4, model_options=(("state_size", 256),)),
    "s4d": dict(num_layers=4, model_options=(("state_size", 64),)),
    "s4": dict(num_layers=4, model_options=(("state_size", 64),)),
    "mamba": dict(num_layers=4, model_options=(("state_size", 16),)),
    "mamba2": dict(num_layers=4, model_options=(("state_size", 16),)),
    "gru": dict(num_layers=1, model_options=()),
    "lstm": dict(num_layers=1, model_options=()),
    "mlp": dict(num_layers=1, model_options=()),
    "lru": dict(num_layers=4, model_options=(("state_size", 256),)),
    "mingru": dict(num_layers=4, model_options=()),
    "linear_attention": dict(num_layers=4, model_options=(("num_heads", 4),)),
    "transformer": dict(num_layers=2, model_options=(("num_heads", 4), ("memory", 64))),
}

# popjaxrl at the same settings, measured side by side on issue #14's 2-core CPU: used without --popjaxrl.
POPJAXRL_STEPS_PER_S = {"s5": 2708.0, "gru": 5064.0}


def bench_config(model: str, env_name: str, updates: int, precision: str = "f32", num_envs: int = 16,
                 num_steps: int = 128, epochs: int = 2, minibatches: int = 2, features: int = 256,
                 **model_sizes) -> PPOConfig:
    """popjaxrl's settings by default; ``model_sizes`` (``num_layers``, ``model_options``) replace the paper's."""
    sizes = {**PAPER_MODELS[model], **model_sizes}
    return validate(PPOConfig(env_name=env_name, model=model, features=features, **sizes,
                              num_envs=num_envs, num_steps=num_steps, update_epochs=epochs,
                              num_minibatches=minibatches, total_timesteps=num_envs * num_steps * updates,
                              updates_per_chunk=updates,
                              **({} if precision == "f32" else {"precision": precision})))


def xla_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float((cost or {}).get("flops", float("nan")))


def bench_agent(config: PPOConfig, seeds: int, repeats: int, method: SeedMethod = "auto") -> dict:
    """Compile and time ``config.chunk_updates`` updates of ``seeds`` seeds, run as ``method`` says, as
    training runs them (``experiment.ppo.seeds_chunk``; default: as training chooses)."""
    parts = build(config)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    state = jax.jit(over_seeds(parts.init, method))(keys)
    chunk = jax.jit(seeds_chunk(parts, method=method))
    t0 = time.perf_counter()
    compiled = chunk.lower(state).compile()
    compile_s = time.perf_counter() - t0
    seconds, state = timed_steps(compiled, state, repeats)
    updates = config.chunk_updates
    flops = loop_aware_flops(compiled.as_text()) / updates / seeds
    params = count_params(jax.tree_util.tree_map(lambda p: p[0], state.train_state.params))
    return dict(method=resolve_seed_method(method), compile_s=compile_s, seconds=seconds, update_s=seconds / updates,
                steps_per_s=updates * config.steps_per_update * seeds / seconds, params=params,
                gflop_per_update=flops / 1e9, xla_gflop_per_call=xla_flops(compiled) / 1e9,
                gflops=flops * updates * seeds / seconds / 1e9)


def bench_model(model: str, precision: str, *, env: str = "RepeatPreviousEasy", updates: int = 4, repeats: int = 3,
                seeds: int = 8, breakdown: bool = False, peak: float = float("nan"),
                popjaxrl: dict | None = None, **sizes) -> dict:
    """One row: 1 seed (and ``seeds`` seeds when > 1, as training runs them and vmapped; the rollout / gradients
    breakdown when asked). ``popjaxrl``: bench_popjaxrl's result for this model, measured in this process."""
    config = bench_config(model, env, updates, precision, **sizes)
    row = dict(model=model, precision=precision, **bench_agent(config, 1, repeats))
    row["peak_fraction"] = row["gflops"] / peak
    if popjaxrl is not None:
        row.update(popjaxrl_steps_per_s=popjaxrl["steps_per_s"], popjaxrl_compile_s=popjaxrl["compile_s"],
                   popjaxrl_gflop_per_update=popjaxrl["gflop_per_update"], popjaxrl_source="this process",
                   popjaxrl_peak_fraction=popjaxrl["gflop_per_update"] * popjaxrl["steps_per_s"]
                   / config.steps_per_update / peak)
    elif model in POPJAXRL_STEPS_PER_S:
        row.update(popjaxrl_steps_per_s=POPJAXRL_STEPS_PER_S[model], popjaxrl_source="issue #14's constant")
    if "popjaxrl_steps_per_s" in row:
        row["x_popjaxrl"] = row["steps_per_s"] / row["popjaxrl_steps_per_s"]
    if seeds > 1:
        many = bench_agent(config, seeds, repeats)
        row.update(seeds=seeds, seed_method=many["method"], seeds_steps_per_s=many["steps_per_s"],
                   seeds_time_ratio=many["seconds"] / row["seconds"], seeds_compile_s=many["compile_s"])
        if row["seed_method"] != "vmap":
            row["seeds_vmap_time_ratio"] = bench_agent(config, seeds, repeats, "vmap")["seconds"] / row["seconds"]
    if breakdown:
        # validation wants >= 1 epoch; with none, the update is the rollout and GAE alone
        rollout = bench_agent(dataclasses.replace(config, update_epochs=0), 1, repeats)
        gradients = row["update_s"] - rollout["update_s"]
        row.update(gradient_s=gradients, rollout_s=rollout["update_s"],
                   gradient_gflops=(row["gflop_per_update"] - rollout["gflop_per_update"]) / gradients)
    return row


def bench_env(name: str, num_envs: int, num_steps: int) -> float:
    env, params = envs.make(name)
    space = env.action_space(params)

    def rollout(key):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)

        def body(carry, key):
            state = carry
            k_act, k_step = jax.random.split(key)
            actions = jax.vmap(space.sample)(jax.random.split(k_act, num_envs))
            obs, state, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_step, num_envs), state, actions, params)
            # Consume the observations too, or XLA drops the dynamics of envs whose reward ignores them.
            return state, reward.sum() + obs.sum()

        return jax.lax.scan(body, state, jax.random.split(key, num_steps))[1].sum()

    run = jax.jit(rollout).lower(jax.random.PRNGKey(0)).compile()
    jax.block_until_ready(run(jax.random.PRNGKey(0)))
    t0 = time.perf_counter()
    jax.block_until_ready(run(jax.random.PRNGKey(1)))
    return num_envs * num_steps / (time.perf_counter() - t0)


def format_row(r: dict) -> str:
    line = (f"{r['model']:<8} {r['precision']:<5} params={r['params']:>9,} compile={r['compile_s']:5.1f}s "
            f"env-steps/s={r['steps_per_s']:>8,.0f} GFLOP/update={r['gflop_per_update']:6.2f} "
            f"({r['xla_gflop_per_call']:.2f} by cost_analysis, per call) GFLOP/s={r['gflops']:6.1f} "
            f"= {100 * r['peak_fraction']:4.1f}% of peak")
    if "x_popjaxrl" in r:
        line += f"  {r['x_popjaxrl']:.2f}x popjaxrl ({r['popjaxrl_steps_per_s']:,.0f}: {r['popjaxrl_source']}"
        if "popjaxrl_compile_s" in r:
            line += (f", compile {r['popjaxrl_compile_s']:.0f}s, {r['popjaxrl_gflop_per_update']:.2f} GFLOP/update "
                     f"= {100 * r['popjaxrl_peak_fraction']:.1f}% of peak")
        line += ")"
    if "seeds" in r:
        line += (f"  {r['seeds']} seeds ({r['seed_method']}): {r['seeds_time_ratio']:.2f}x the time of 1 "
                 f"({r['seeds_steps_per_s']:,.0f} env-steps/s)")
        if "seeds_vmap_time_ratio" in r:
            line += f", vmapped {r['seeds_vmap_time_ratio']:.2f}x"
    if "gradient_s" in r:
        line += (f"  [per update: rollout {1e3 * r['rollout_s']:.0f} ms, gradients {1e3 * r['gradient_s']:.0f} ms "
                 f"at {r['gradient_gflops']:.0f} GFLOP/s]")
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gru", "s5"], choices=sorted(PAPER_MODELS))
    parser.add_argument("--precisions", nargs="+", default=["f32"], choices=PRECISIONS)
    parser.add_argument("--env", default="RepeatPreviousEasy")
    parser.add_argument("--updates", type=int, default=4, help="updates per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8, help="seed count for the multi-seed cost (1: skip)")
    parser.add_argument("--breakdown", action="store_true", help="split the update into rollout and gradients")
    parser.add_argument("--env-only", nargs="*", default=[], help="also time these envs alone (1024 envs x 256 steps)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--popjaxrl", default=None, metavar="DIR",
                        help="a checkout of popjaxrl: time its S5 / GRU in this process for the x popjaxrl ratio")
    args = parser.parse_args()
    popjaxrl = None
    if args.popjaxrl is not None:
        try:
            check_env(args.env)
            popjaxrl = load_popjaxrl(check_checkout(args.popjaxrl))
        except ValueError as e:
            parser.error(str(e))
    peak = matmul_peak()
    peak_bf16 = matmul_peak(dtype="bf16")
    print(f"backend={jax.default_backend()} device={jax.devices()[0].device_kind} env={args.env} 16 envs x 128 "
          f"steps, 2 epochs x 2 minibatches; matmul peak (2048x2048): f32 {peak:.0f} GFLOP/s, bf16->f32 "
          f"{peak_bf16:.0f} GFLOP/s", flush=True)
    rows = []
    for model in args.models:
        baseline = None
        if popjaxrl is not None and model in POPJAXRL_MODELS:
            baseline = bench_popjaxrl(popjaxrl, model, env_name=args.env, repeats=args.repeats)
        for precision in args.precisions:
            row = bench_model(model, precision, env=args.env, updates=args.updates, repeats=args.repeats,
                              seeds=args.seeds, breakdown=args.breakdown, peak=peak, popjaxrl=baseline)
            rows.append(row)
            print(format_row(row), flush=True)
    base = {r["model"]: r for r in rows if r["precision"] == args.precisions[0]}
    for r in rows:
        if r["precision"] != args.precisions[0]:
            print(f"{r['model']} {r['precision']}/{args.precisions[0]}: "
                  f"{r['steps_per_s'] / base[r['model']]['steps_per_s']:.2f}x the env-steps/s")
    if "gru" in base:
        for model, r in base.items():
            if model != "gru":
                print(f"{model}/gru: speed {r['steps_per_s'] / base['gru']['steps_per_s']:.2f}x, "
                      f"compile {r['compile_s'] / base['gru']['compile_s']:.2f}x")
    for name in args.env_only:
        print(f"env-only {name:<24} 1024 envs: {bench_env(name, 1024, 256):>12,.0f} steps/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"matmul_peak_gflops": peak, "matmul_peak_bf16_gflops": peak_bf16, "args": vars(args),
                       "device": jax.devices()[0].device_kind, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
