"""Can the rewards of a world-model run's replay be read from its frames at all, and from which ones?

    python scripts/reward_from_frames.py RUN_DIR [--frames before after both] [--updates 1600] [--from 0.75]
                                                 [--loss squared|twohot]

A world model that never learns an env's reward (scripts/world_model_reward_events.py) leaves two explanations:
the reward is not in what the model sees, or the model does not learn what is there. Here a small network of its
own, no world model involved, regresses the reward ``r_t`` of each replay row (paid for ``a_t``) from frames:

- ``before``: ``o_{t-1}, o_t`` and the action ``a_t``, what the agent saw when it acted (the reward predicted);
- ``after``: ``o_{t+1}``, the frame the action led to (the reward read off the screen, a score that changed);
- ``both``: ``o_t, o_{t+1}``.

It trains on the rows before the fraction ``--from`` of the replay and reports, on the rows after (the agent's
later games), the mean prediction where the env paid less than, exactly and more than zero and the correlation,
as the reward-events table does. ``--balanced`` draws half of each batch from the rewarded rows. Rows whose three
frames are not in one episode are left out. Images go through strided convolutions, vectors through an MLP.
``--loss twohot`` fits the world model's reward loss instead of the squared error (its two-hot cross-entropy over
the run's bins, the output layer zero-initialised as the reward head's): whether the loss, not the model, decides
how soon a sparse reward is learned.
"""

from __future__ import annotations

import argparse
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssmrl.agents.world_model.distributions import twohot_loss, twohot_mean
from ssmrl.agents.world_model.networks import preprocess
from ssmrl.agents.world_model.reward_events import format_table, outcome_entry, signed
from ssmrl.agents.world_model.world_model import value_bins
from ssmrl.experiment import compile_cache
from ssmrl.experiment.run_dir import RunDirError
from ssmrl.experiment.world_model import open_world_model_run

FRAMES = ("before", "after", "both")
LOSSES = ("squared", "twohot")


def usable_rows(first: np.ndarray, first_row: int) -> tuple[np.ndarray, np.ndarray]:
    """``first [N, E]`` (bool: the row starts an episode) -> ``(train, test)`` arrays of ``(row, env)`` index pairs
    ``[K, 2]``: the rows ``t`` whose frames ``t-1, t, t+1`` are in one episode, ``t + 1 < first_row`` for training
    and ``t - 1 >= first_row`` for testing."""
    N = first.shape[0]
    t, e = np.meshgrid(np.arange(1, N - 1), np.arange(first.shape[1]), indexing="ij")
    t, e = t.ravel(), e.ravel()
    one_episode = ~first[t, e] & ~first[t + 1, e]
    pairs = np.stack([t, e], 1)[one_episode]
    return pairs[pairs[:, 0] + 1 < first_row], pairs[pairs[:, 0] - 1 >= first_row]


def frame_inputs(obs: np.ndarray, pairs: np.ndarray, frames: str) -> np.ndarray:
    """The input of ``frames`` for rows ``pairs [K, 2]`` of ``obs [N, E, *obs_shape]``: the frames concatenated on
    the last axis, in the env's dtype."""
    t, e = pairs[:, 0], pairs[:, 1]
    offsets = {"before": (-1, 0), "after": (1,), "both": (0, 1)}[frames]
    return np.concatenate([obs[t + k, e] for k in offsets], -1)


class RewardNet(nn.Module):
    """``(x [B, *frames_shape] in the env's dtype, action one-hot [B, A] or None) -> [B, outputs]``: the reward
    (``outputs=1``) or two-hot logits (zero-initialised); ``x`` is scaled as the world model's input is
    (``preprocess``)."""

    image: bool
    outputs: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, action: jax.Array | None) -> jax.Array:
        x = preprocess(x)
        if self.image:
            for channels in (16, 32, 64, 64):
                x = nn.silu(nn.Conv(channels, (4, 4), (2, 2))(x))
        x = x.reshape(x.shape[0], -1)
        if action is not None:
            x = jnp.concatenate([x, action], -1)
        for _ in range(2):
            x = nn.silu(nn.Dense(256)(x))
        return nn.Dense(self.outputs, kernel_init=nn.initializers.zeros if self.outputs > 1
                        else nn.initializers.lecun_normal())(x)


def fit_and_score(obs, action, reward, train, test, frames: str, num_actions: int, updates: int, batch: int,
                  balanced: bool, seed: int, on_score: Callable[[int, dict], None] | None = None,
                  bins: jax.Array | None = None) -> dict:
    """Fit a :class:`RewardNet` on rows ``train`` (squared error, or with ``bins`` the two-hot cross-entropy over
    them; Adam 3e-4) and return its reward-events entry on rows ``test``: ``{outcome: (steps, mean prediction),
    "correlation": r}``; ``on_score(update, entry)`` four times on the way."""
    net = RewardNet(image=obs.ndim == 5, outputs=1 if bins is None else bins.shape[0])

    def predicted(params, x, a):
        out = net.apply(params, x, a)
        return out[:, 0] if bins is None else twohot_mean(out, bins)

    def loss(params, x, a, r):
        if bins is None:
            return jnp.mean((predicted(params, x, a) - r) ** 2)
        return jnp.mean(twohot_loss(net.apply(params, x, a), r, bins))

    use_action = frames == "before"

    def inputs(pairs):
        a = jax.nn.one_hot(action[pairs[:, 0], pairs[:, 1]], num_actions) if use_action else None
        return frame_inputs(obs, pairs, frames), a

    params = net.init(jax.random.PRNGKey(seed), *inputs(train[:1]))
    tx = optax.adam(3e-4)
    opt = tx.init(params)

    @jax.jit
    def update(params, opt, x, a, r):
        grads = jax.grad(loss)(params, x, a, r)
        updates_, opt = tx.update(grads, opt)
        return optax.apply_updates(params, updates_), opt

    predict = jax.jit(predicted)
    paid_train = reward[train[:, 0], train[:, 1]]
    paid_test = reward[test[:, 0], test[:, 1]]
    rewarded, unrewarded = train[paid_train != 0], train[paid_train == 0]
    if balanced and (len(rewarded) == 0 or len(unrewarded) == 0):
        raise ValueError(f"--balanced needs rewarded and unrewarded training rows, got {len(rewarded)} and "
                         f"{len(unrewarded)}")
    rng = np.random.default_rng(seed)

    def score() -> dict:
        p = np.concatenate([np.asarray(predict(params, *inputs(test[i:i + 256]))) for i in range(0, len(test), 256)])
        return outcome_entry(p, paid_test)

    for i in range(1, updates + 1):
        if balanced:
            rows = np.concatenate([rng.choice(rewarded, batch // 2), rng.choice(unrewarded, batch - batch // 2)])
        else:
            rows = rng.choice(train, batch)
        params, opt = update(params, opt, *inputs(rows), reward[rows[:, 0], rows[:, 1]])
        if on_score is not None and i % max(1, updates // 4) == 0 and i < updates:
            on_score(i, score())
    return score()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a train/world_model.py run directory")
    parser.add_argument("--frames", nargs="+", choices=FRAMES, default=list(FRAMES),
                        help="which frames the network reads (default: each in turn)")
    parser.add_argument("--from", dest="start", type=float, default=0.75,
                        help="fraction of the replay's rows trained on; the rows after it are scored")
    parser.add_argument("--updates", type=int, default=1600)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--balanced", action="store_true", help="half of each batch from rows that paid")
    parser.add_argument("--loss", choices=LOSSES, default="squared",
                        help="squared error, or the world model's two-hot cross-entropy over the run's bins")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.start < 1:
        parser.error(f"--from must be in (0, 1), got {args.start}")
    if args.updates < 1 or args.batch < 2:
        parser.error(f"--updates must be >= 1 and --batch >= 2, got {args.updates}, {args.batch}")
    try:
        parts, step, state = open_world_model_run(args.run_dir)
    except RunDirError as error:
        parser.error(str(error))
    replay, size = state.replay, int(state.replay.size)
    first_row = int(args.start * size)
    train, test = usable_rows(np.asarray(replay.first[:size]), first_row)
    if len(train) == 0 or len(test) == 0:
        parser.error(f"--from {args.start} of {size} rows leaves {len(train)} rows to train on and {len(test)} "
                     "to score")
    obs = np.asarray(replay.obs[:size])
    action, reward = np.asarray(replay.action[:size]), np.asarray(replay.reward[:size])
    paid = reward[train[:, 0], train[:, 1]]
    print(f"{parts.config.env_name}: {len(train)} rows to train on ({int((paid != 0).sum())} paid), {len(test)} "
          f"scored, {args.updates} updates of {args.batch}" + (", balanced" if args.balanced else "")
          + f", {args.loss} loss", flush=True)
    table = {}
    for frames in args.frames:
        def report(i, entry, frames=frames):
            print(f"{frames}, update {i}: correlation {signed(entry['correlation'])}", flush=True)

        try:
            table[frames] = fit_and_score(obs, action, reward, train, test, frames, parts.num_actions, args.updates,
                                          args.batch, args.balanced, args.seed, report,
                                          value_bins(parts.config) if args.loss == "twohot" else None)
        except ValueError as error:
            parser.error(str(error))
    print("\n" + format_table(table))
    return {"checkpoint": step, "first_row": first_row, "train_rows": len(train), "test_rows": len(test),
            "table": table}


if __name__ == "__main__":
    compile_cache.enable()
    main()
