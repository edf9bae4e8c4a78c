"""Does the world model learn RepeatPrevious's reward? Train it alone on random-policy data and compare
its reward predictions with the best memoryless guess (the mean reward) on held-out episodes.

    python scripts/world_model_reward_probe.py --model drama --k 4 --updates 1500    # the popgym preset's losses
    python scripts/world_model_reward_probe.py --model drama --k 4 --twohot-range 20 --free-bits 1 --lr 1e-3
    python scripts/world_model_reward_probe.py --model s4wm --layer s4 --option dt_min=0.01 --first --batch-length 64
    python scripts/world_model_reward_probe.py --model rssm --threshold 2.27 --dims 5 --steps 2048 --updates 2000

RepeatPrevious(k) pays ``+-1 / (52 - k)`` for naming the suit of the card ``k - 1`` steps back (``k = 1``:
the current card, no memory needed); ``--reward-scale`` multiplies the rewards the model sees and is
judged on (a resolution ablation: ``+-1/48`` lies inside one bin of the 255-bin symlog two-hot head).
``--first`` probes RepeatFirst, whose every reward names the episode's first card; only steps of a window
that also holds that card can be predicted, so its ratio cannot reach 0 (about 0.36 with 64-step windows).
``--threshold T`` probes no env: Gaussian vectors of ``--dims`` numbers, paid 1 where the first one's size exceeds
``T`` (``agents.world_model.probe.threshold_reward_replay``; 2.3% of the steps at 2.27), a reward with nothing to
remember: how rare a reward this world model learns, and how soon.
"""

from __future__ import annotations

import argparse

import jax

from ssmrl.agents.world_model.config import REWARD_INPUTS, REWARD_OUTPUTS
from ssmrl.agents.world_model.probe import (
    fit_world_model,
    layer_option,
    random_policy_replay,
    reward_errors,
    small_parts,
    threshold_parts,
    threshold_reward_replay,
)
from ssmrl.experiment import compile_cache


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="drama")
    parser.add_argument("--layer", default="s4", help="the s4wm blocks' ssm registry layer (model.layer)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", type=layer_option,
                        help="an ssm.make option of the drama / s4wm blocks (model.options), e.g. dt_max=0.01")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--first", action="store_true",
                        help="RepeatFirst instead: the suit of the episode's first card, up to 51 steps back")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="Gaussian vectors paid 1 where |first number| > T instead of RepeatPrevious")
    parser.add_argument("--dims", type=int, default=5, help="with --threshold: numbers per observation")
    parser.add_argument("--batch-length", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300, help="random-policy steps of each of the 8 envs")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--reward-scale", type=float, default=1.0)
    parser.add_argument("--free-bits", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--twohot-range", type=float, default=1.0)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--reward-input", default="state_per_action", choices=REWARD_INPUTS,
                        help="what the reward head reads (the popgym preset's; the first table in RESULTS.md "
                             "predates the choice: after_action)")
    parser.add_argument("--reward-output", default="twohot", choices=REWARD_OUTPUTS)
    args = parser.parse_args(argv)
    if args.dims < 1 or args.steps < args.batch_length:
        parser.error(f"--dims must be >= 1 and --steps >= --batch-length, got {args.dims}, {args.steps}")
    from ssmrl.envs.popgym.cards import RepeatFirst, RepeatPrevious

    settings = dict(batch_length=args.batch_length, prefill=max(16, args.batch_length), free_bits=args.free_bits,
                    wm_lr=args.lr, twohot_range=args.twohot_range, reward_input=args.reward_input,
                    reward_output=args.reward_output, s4wm_layer=args.layer, layer_options=tuple(args.option))
    if args.threshold is not None:
        parts = threshold_parts(args.model, args.dims, **settings)
        train, held_out = (threshold_reward_replay(parts, jax.random.PRNGKey(s), args.steps, args.threshold)
                           for s in (0, 1))
        skip = 0  # nothing to remember: every step's reward can be predicted
    else:
        env = RepeatFirst(num_decks=1) if args.first else RepeatPrevious(num_decks=1, k=args.k)
        parts = small_parts(args.model, env=env, **settings)
        train, held_out = (random_policy_replay(parts, jax.random.PRNGKey(s), args.steps) for s in (0, 1))
        skip = args.k

    def report(i, params, metrics):
        model, chance = reward_errors(parts, params, held_out, jax.random.PRNGKey(2), skip, args.reward_scale)
        print(f"update {i}: reward MSE {model:.3g} (mean-reward guess {chance:.3g}, ratio {model / chance:.2f}); "
              + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()), flush=True)

    fit_world_model(parts, train, args.updates, reward_scale=args.reward_scale, every=args.every, on_metrics=report)


if __name__ == "__main__":
    compile_cache.enable()  # a rerun (on another checkpoint, with other flags) loads what it compiled before
    main()
