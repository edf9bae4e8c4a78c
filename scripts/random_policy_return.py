"""The uniform random policy's return on a registered env with discrete actions: the floor a learning claim
must clear ("above random" = above its mean plus 5 standard errors).

    python scripts/random_policy_return.py Breakout-MinAtar [--episodes 1000] [--max-steps 3000] [--seed 0]

Runs ``--episodes`` envs in parallel, each until its first episode ends (or ``--max-steps``), and prints the
mean return of the finished episodes, its standard error and the mean plus 5 standard errors.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl import envs
from ssmrl.experiment import compile_cache


def first_episode_returns(name: str, episodes: int, max_steps: int, key: jax.Array) -> np.ndarray:
    """Returns ``[finished]`` of the first episode of each of ``episodes`` envs under uniform random actions."""
    env, params = envs.make(name)
    num_actions = env.action_space(params).n
    k_reset, k_run = jax.random.split(key)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, episodes), params)

    def body(carry, key):
        state, ret, ended = carry
        k_act, k_env = jax.random.split(key)
        action = jax.random.randint(k_act, (episodes,), 0, num_actions)
        _, state, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, episodes), state, action, params)
        ret = ret + jnp.where(ended, 0.0, reward)
        return (state, ret, ended | terminated | truncated), None

    init = (state, jnp.zeros(episodes), jnp.zeros(episodes, bool))
    (_, ret, ended), _ = jax.jit(lambda c, k: jax.lax.scan(body, c, k))(init, jax.random.split(k_run, max_steps))
    return np.asarray(ret)[np.asarray(ended)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env", help="a registered env name (envs.available())")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.env not in envs.available():
        parser.error(f"unknown env {args.env!r}; valid: {', '.join(sorted(envs.available()))}")
    returns = first_episode_returns(args.env, args.episodes, args.max_steps, jax.random.PRNGKey(args.seed))
    se = returns.std(ddof=1) / np.sqrt(len(returns))
    print(f"{args.env}: {len(returns)} episodes, mean {returns.mean():.3f}, standard error {se:.3f}, "
          f"mean + 5 SE {returns.mean() + 5 * se:.3f}")


if __name__ == "__main__":
    compile_cache.enable()  # a rerun (on another checkpoint, with other flags) loads what it compiled before
    main()
