"""PPO on POPGym: compile time, env-steps/s, multi-seed cost and env-only throughput.

    python bench/ppo_popgym.py                  # the settings popjaxrl was measured at (see docs/RESULTS.md)
    python bench/ppo_popgym.py --models gru s5 mamba --seeds 8

Settings: one seed, RepeatPreviousEasy, 16 envs x 128 steps, 2 epochs x 2 minibatches, paper-sized
models as in configs/ppo/model (S5: 4 layers, width 256, state 256; GRU: width 256; transformer: 2 GTrXL
blocks, window 64). Ratios are against GRU measured in the same process.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from ssmrl import envs
from ssmrl.agents.params import count_params
from ssmrl.agents.ppo.config import PPOConfig, validate
from ssmrl.agents.ppo.train import build, make_chunk

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


def bench_config(model: str, env_name: str, updates: int) -> PPOConfig:
    return validate(PPOConfig(env_name=env_name, model=model, features=256, **PAPER_MODELS[model],
                              num_envs=16, num_steps=128, update_epochs=2, num_minibatches=2,
                              total_timesteps=16 * 128 * updates, updates_per_chunk=updates))


def bench_agent(config: PPOConfig, seeds: int, repeats: int) -> dict:
    parts = build(config)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    state = jax.jit(jax.vmap(parts.init))(keys)
    chunk = jax.jit(jax.vmap(make_chunk(parts)))
    t0 = time.perf_counter()
    compiled = chunk.lower(state).compile()
    compile_s = time.perf_counter() - t0
    state, _ = compiled(state)
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = compiled(state)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    steps = config.chunk_updates * config.steps_per_update * seeds
    params = count_params(jax.tree_util.tree_map(lambda p: p[0], state.train_state.params))
    return dict(compile_s=compile_s, seconds=seconds, steps_per_s=steps / seconds, params=params)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gru", "s5"], choices=sorted(PAPER_MODELS))
    parser.add_argument("--env", default="RepeatPreviousEasy")
    parser.add_argument("--updates", type=int, default=4, help="updates per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8, help="seed count for the multi-seed cost")
    parser.add_argument("--env-only", nargs="*", default=["RepeatPreviousEasy", "CountRecallEasy",
                                                          "StatelessCartPoleEasy"])
    args = parser.parse_args()
    print(f"backend={jax.default_backend()} devices={jax.device_count()} env={args.env} "
          "16 envs x 128 steps, 2 epochs x 2 minibatches")
    rows = {}
    for model in args.models:
        config = bench_config(model, args.env, args.updates)
        one = bench_agent(config, 1, args.repeats)
        many = bench_agent(config, args.seeds, args.repeats) if args.seeds > 1 else None
        rows[model] = one
        line = (f"{model:<16} params={one['params']:>9,} compile={one['compile_s']:6.1f}s "
                f"env-steps/s={one['steps_per_s']:>9,.0f}")
        if many:
            line += (f"  {args.seeds} seeds: {many['seconds'] / one['seconds']:.2f}x the time of 1 "
                     f"({many['steps_per_s']:,.0f} env-steps/s)")
        print(line, flush=True)
    if "gru" in rows:
        for model, row in rows.items():
            if model != "gru":
                print(f"{model}/gru: speed {row['steps_per_s'] / rows['gru']['steps_per_s']:.2f}x, "
                      f"compile {row['compile_s'] / rows['gru']['compile_s']:.2f}x")
    for name in args.env_only:
        print(f"env-only {name:<24} 1024 envs: {bench_env(name, 1024, 256):>12,.0f} steps/s", flush=True)


if __name__ == "__main__":
    main()
