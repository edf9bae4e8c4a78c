"""Does the world model learn RepeatPrevious's reward? Train it alone on random-policy data and compare
its reward predictions with the best memoryless guess (the mean reward) on held-out episodes.

    python scripts/world_model_reward_probe.py --model drama --k 4 --updates 1500    # the popgym preset's losses
    python scripts/world_model_reward_probe.py --model drama --k 4 --twohot-range 20 --free-bits 1 --lr 1e-3

RepeatPrevious(k) pays ``+-1 / (52 - k)`` for naming the suit of the card ``k - 1`` steps back (``k = 1``:
the current card, no memory needed); ``--reward-scale`` multiplies the rewards the model sees and is
judged on (a resolution ablation: ``+-1/48`` lies inside one bin of the 255-bin symlog two-hot head).
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.world_model import config as wmc  # noqa: E402
from agents.world_model import replay as rb  # noqa: E402
from agents.world_model.agent import Parts, build, collect, init  # noqa: E402
from agents.world_model.distributions import twohot_mean  # noqa: E402
from agents.world_model.world_model import value_bins, world_model_loss  # noqa: E402

SMALL = dict(num_envs=8, hidden=32, num_layers=1, state_size=8, latent_groups=8, latent_classes=8, vector_hidden=64,
             mlp_hidden=32, ac_hidden=16, ac_layers=1, batch_size=16, batch_length=16, prefill=16, total_steps=400)


def small_parts(model: str, env=None, **overrides) -> Parts:
    """A small POPGym world model (``SMALL``) on RepeatPreviousEasy, or on ``env`` where given."""
    config = wmc.validate(wmc.preset("popgym", env_name="RepeatPreviousEasy", model=model,
                                     **{**SMALL, **overrides}))
    return build(config) if env is None else build(config, env=env, env_params=env.default_params)


def random_policy_replay(parts: Parts, key: jax.Array, steps: int) -> rb.Replay:
    """``steps`` random-policy env steps of every env, in a fresh replay."""
    state = init(parts, key)
    return jax.jit(lambda s: collect(parts, s, steps, random_policy=True)[0])(state).replay


def fit_world_model(parts: Parts, replay: rb.Replay, updates: int, seed: int = 0, reward_scale: float = 1.0,
                    every: int = 0, on_metrics=None):
    """``updates`` world-model gradient steps on windows of ``replay``; returns ``(params, metrics per
    update)``; ``on_metrics(i, params, metrics)`` is called every ``every`` updates."""
    config = parts.config
    params = init(parts, jax.random.PRNGKey(seed)).params["wm"]
    opt = parts.wm_tx.init(params)

    @jax.jit
    def update(params, opt, replay, key):
        k_batch, k_loss = jax.random.split(key)
        replay, batch = rb.sample(replay, k_batch, config.batch_size, config.batch_length)
        batch = {**batch, "reward": batch["reward"] * reward_scale}
        (_, (_, metrics)), grads = jax.value_and_grad(world_model_loss, has_aux=True)(params, parts.wm, config,
                                                                                     batch, k_loss)
        updates, opt = parts.wm_tx.update(grads, opt, params)
        return jax.tree.map(jnp.add, params, updates), opt, replay, metrics

    history = []
    for i in range(updates):
        params, opt, replay, metrics = update(params, opt, replay, jax.random.PRNGKey(1000 + i))
        history.append({k: float(v) for k, v in metrics.items()})
        if every and (i + 1) % every == 0 and on_metrics is not None:
            on_metrics(i + 1, params, history[-1])
    return params, history


def reward_errors(parts: Parts, params, replay: rb.Replay, key: jax.Array, skip: int,
                  reward_scale: float = 1.0) -> tuple[float, float]:
    """Mean squared error of the predicted reward and of the mean reward (the best memoryless guess
    under a random policy) on 64 windows of ``replay``, from step ``skip`` of each window on."""
    config = parts.config
    k_batch, k_obs = jax.random.split(key)
    _, batch = rb.sample(replay, k_batch, 64, config.batch_length)
    reward = batch["reward"] * reward_scale
    T, B = batch["first"].shape
    _, out = parts.wm.apply(params, parts.wm.initialize_carry(B), batch["obs"], batch["action"], batch["first"],
                            jax.random.split(k_obs, T), method="observe")
    logits, _ = parts.wm.apply(params, out["h"], method="heads")
    predicted = twohot_mean(logits, value_bins(config))
    model = jnp.mean((predicted - reward)[skip:] ** 2)
    chance = jnp.mean((reward - jnp.mean(reward))[skip:] ** 2)
    return float(model), float(chance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="drama")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--reward-scale", type=float, default=1.0)
    parser.add_argument("--free-bits", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--twohot-range", type=float, default=1.0)
    parser.add_argument("--every", type=int, default=250)
    args = parser.parse_args()
    from envs.popgym.cards import RepeatPrevious

    parts = small_parts(args.model, env=RepeatPrevious(num_decks=1, k=args.k), free_bits=args.free_bits,
                        wm_lr=args.lr, twohot_range=args.twohot_range)
    train, held_out = (random_policy_replay(parts, jax.random.PRNGKey(s), 300) for s in (0, 1))

    def report(i, params, metrics):
        model, chance = reward_errors(parts, params, held_out, jax.random.PRNGKey(2), args.k, args.reward_scale)
        print(f"update {i}: reward MSE {model:.3g} (mean-reward guess {chance:.3g}, ratio {model / chance:.2f}); "
              + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()), flush=True)

    fit_world_model(parts, train, args.updates, reward_scale=args.reward_scale, every=args.every, on_metrics=report)


if __name__ == "__main__":
    main()
