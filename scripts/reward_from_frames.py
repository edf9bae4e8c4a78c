"""Can the rewards of a world-model run's replay be read from its frames at all, and from which ones?

    python scripts/reward_from_frames.py RUN_DIR [--frames before after both] [--updates 1600] [--from 0.75]
                                                 [--train-rows N] [--balanced] [--ahead K]
                                                 [--loss squared|twohot] [--net frames|encoder|latent] [--recon]
                                                 [--stop-recon-gradient] [--head plain|world_model]
                                                 [--set NAME=VALUE ...]

A world model that never learns an env's reward (scripts/world_model_reward_events.py) leaves two explanations:
the reward is not in what the model sees, or the model does not learn what is there. Here a small network of its
own, no world model involved, regresses the reward ``r_t`` of each replay row (paid for ``a_t``) from frames:

- ``before``: ``o_{t-1}, o_t`` and the action ``a_t``, what the agent saw when it acted (the reward predicted);
- ``after``: ``o_{t+1}``, the frame the action led to (the reward read off the screen, a score that changed);
- ``both``: ``o_t, o_{t+1}``.

It trains on the rows before the fraction ``--from`` of the replay and reports, on the rows after (the agent's
later games), the mean prediction where the env paid less than, exactly and more than zero and the correlation,
as the reward-events table does. ``--balanced`` draws half of each batch from the rewarded rows. ``--train-rows N``
trains on the earliest N of those rows only, scored on the same rows: how many rows of the env reading the reward
takes. ``--ahead K`` (``before`` only) foresees ``r_t`` from ``o_{t-K}, o_{t-K+1}`` and the actions
``a_{t-K+1} .. a_t``: what the world model's ``K``-th imagined step has to predict from a context ending at
``o_{t-K+1}``, open-loop. Rows whose frames are not in one episode are left out. Images go through strided
convolutions, vectors through an MLP.
``--loss twohot`` fits the world model's reward loss instead of the squared error (its two-hot cross-entropy over
the run's bins, the output layer zero-initialised as the reward head's): whether the loss, not the model, decides
how soon a sparse reward is learned.

``--net`` takes the world model's path from pixels to the reward apart, one piece at a time (``--frames after``
only): ``frames`` is the network's own convolutions; ``encoder`` the run's image encoder (its channels, kernel and
LayerNorms) before the same head; ``latent`` that encoder then the run's categorical latent (a posterior head of
the run's MLP size, its groups x classes, unimix and straight-through samples) before the head, with no sequence
model; ``--recon`` also trains the run's decoder to reconstruct the frame from those features, with the world
model's summed squared error, so that the reward competes with the pixels for them as in the world model
(``--set reward_loss_scale=W`` weights the reward's loss against it; ``--set NAME=VALUE`` changes any of the run's
world-model settings these pieces are built from, e.g. ``latent_groups=32``). Each
progress line scores the training rows too: a net that does not fit them is not missing the reward for want of
generalisation; with ``--recon`` it also gives the reconstruction's error (summed over a frame, as the loss), what
the reward's share of the features costs the pixels. ``--stop-recon-gradient`` fits the decoder to features it does
not shape (it reads them through ``stop_gradient``): the reward trains them alone, and the error says how much of
the frame they hold anyway. ``--head world_model`` reads the reward through the run's own reward head instead of the
net's (its width and layers, and its ``reward_norm`` and ``reward_zero_init``, which ``--set`` changes).
"""

from __future__ import annotations

import argparse
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssmrl.agents.config import ConfigError
from ssmrl.agents.world_model.config import WorldModelConfig
from ssmrl.agents.world_model.distributions import sample_latent, twohot_loss, twohot_mean, unimix_logits
from ssmrl.agents.world_model.networks import MLP, make_observation_networks, preprocess
from ssmrl.agents.world_model.probe import setting, with_settings
from ssmrl.agents.world_model.reward_events import format_table, outcome_entry, signed
from ssmrl.agents.world_model.world_model import value_bins
from ssmrl.experiment import compile_cache
from ssmrl.experiment.run_dir import RunDirError
from ssmrl.experiment.world_model import open_world_model_run

FRAMES = ("before", "after", "both")
LOSSES = ("squared", "twohot")
NETS = ("frames", "encoder", "latent")
HEADS = ("plain", "world_model")


def usable_rows(first: np.ndarray, first_row: int, back: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``first [N, E]`` (bool: the row starts an episode) -> ``(train, test)`` arrays of ``(row, env)`` index pairs
    ``[K, 2]``, in row order: the rows ``t`` whose frames ``t-back .. t+1`` are in one episode, ``t + 1 <
    first_row`` for training and ``t - back >= first_row`` for testing."""
    N = first.shape[0]
    t, e = np.meshgrid(np.arange(back, N - 1), np.arange(first.shape[1]), indexing="ij")
    t, e = t.ravel(), e.ravel()
    one_episode = np.logical_and.reduce([~first[t + k, e] for k in range(1 - back, 2)])
    pairs = np.stack([t, e], 1)[one_episode]
    return pairs[pairs[:, 0] + 1 < first_row], pairs[pairs[:, 0] - back >= first_row]


def frame_inputs(obs: np.ndarray, pairs: np.ndarray, frames: str, ahead: int = 1) -> np.ndarray:
    """The input of ``frames`` for rows ``pairs [K, 2]`` of ``obs [N, E, *obs_shape]``: the frames concatenated on
    the last axis, in the env's dtype (``before``: ``o_{t-ahead}, o_{t-ahead+1}``, ``ahead`` steps before ``t``'s
    reward)."""
    t, e = pairs[:, 0], pairs[:, 1]
    offsets = {"before": (-ahead, 1 - ahead), "after": (1,), "both": (0, 1)}[frames]
    return np.concatenate([obs[t + k, e] for k in offsets], -1)


def action_inputs(action: np.ndarray, pairs: np.ndarray, num_actions: int, ahead: int = 1) -> jax.Array:
    """The actions ``a_{t-ahead+1} .. a_t`` of rows ``pairs [K, 2]`` of ``action [N, E]``, one-hot and concatenated:
    ``[K, ahead * num_actions]``."""
    t, e = pairs[:, 0], pairs[:, 1]
    return jnp.concatenate([jax.nn.one_hot(action[t + k, e], num_actions) for k in range(1 - ahead, 1)], -1)


class CategoricalLatent(nn.Module):
    """``(features [B, F], key) -> z [B, groups * classes]``: the world model's posterior without its sequence model
    (an MLP to logits, ``unimix``, one straight-through one-hot sample per group)."""

    groups: int
    classes: int
    unimix: float
    hidden: int
    layers: int

    @nn.compact
    def __call__(self, feat: jax.Array, key: jax.Array) -> jax.Array:
        logits = MLP(self.hidden, self.layers, self.groups * self.classes)(feat)
        return sample_latent(key, unimix_logits(logits.reshape(-1, self.groups, self.classes), self.unimix))


class RewardNet(nn.Module):
    """``(x [B, *frames_shape] in the env's dtype, action one-hot [B, A] or None, key) -> (out [B, outputs],
    reconstruction [B, *frames_shape] or None)``: the reward (``outputs=1``) or two-hot logits (zero-initialised)
    from two 256-wide Dense layers, or from ``head`` where given, read from the net's own convolutions (``x`` scaled
    as the world model's input is, ``preprocess``) or from ``encoder``, then through ``latent`` where given;
    ``decoder`` reconstructs ``x`` (in ``preprocess``'s space) from the same features, its gradient reaching them
    unless ``recon_gradient`` is False."""

    image: bool
    outputs: int = 1
    encoder: nn.Module | None = None
    latent: nn.Module | None = None
    decoder: nn.Module | None = None
    recon_gradient: bool = True
    head: nn.Module | None = None

    @nn.compact
    def __call__(self, x: jax.Array, action: jax.Array | None, key: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        if self.encoder is not None:
            feat = self.encoder(x)
        else:
            feat = preprocess(x)
            if self.image:
                for channels in (16, 32, 64, 64):
                    feat = nn.silu(nn.Conv(channels, (4, 4), (2, 2))(feat))
            feat = feat.reshape(feat.shape[0], -1)
        if self.latent is not None:
            feat = self.latent(feat, key)
        recon = None
        if self.decoder is not None:
            recon = self.decoder(feat if self.recon_gradient else jax.lax.stop_gradient(feat))
        if action is not None:
            feat = jnp.concatenate([feat, action], -1)
        if self.head is not None:
            return self.head(feat), recon
        for _ in range(2):
            feat = nn.silu(nn.Dense(256)(feat))
        return nn.Dense(self.outputs, kernel_init=nn.initializers.zeros if self.outputs > 1
                        else nn.initializers.lecun_normal())(feat), recon


def make_reward_net(config: WorldModelConfig, obs_shape: tuple[int, ...], net: str, recon: bool,
                    outputs: int, recon_gradient: bool = True, head: str = "plain") -> RewardNet:
    """``net`` (one of ``NETS``) for observations of ``obs_shape``, its world-model pieces built as ``config``
    builds them; ``recon`` adds the decoder (``encoder`` and ``latent`` only), ``recon_gradient=False`` stops its
    gradient at the features; ``head`` (one of ``HEADS``) ``world_model`` is the world model's reward head."""
    image = len(obs_shape) == 3
    reward_head = (MLP(config.mlp_hidden, config.mlp_layers, outputs, zero_out=config.reward_zero_init,
                       norm=config.reward_norm) if head == "world_model" else None)
    if net == "frames":
        if recon:
            raise ValueError("--recon reconstructs through the run's decoder: it needs --net encoder or latent")
        return RewardNet(image=image, outputs=outputs, head=reward_head)
    encoder, decoder = make_observation_networks(obs_shape, config.channels, config.kernel, config.decoder,
                                                 config.vector_hidden, config.vector_layers, config.conv_weight_grad)
    latent = (CategoricalLatent(config.latent_groups, config.latent_classes, config.unimix, config.mlp_hidden,
                                config.mlp_layers) if net == "latent" else None)
    return RewardNet(image=image, outputs=outputs, encoder=encoder, latent=latent, decoder=decoder if recon else None,
                     recon_gradient=recon_gradient, head=reward_head)


def fit_and_score(obs, action, reward, train, test, frames: str, num_actions: int, updates: int, batch: int,
                  balanced: bool, seed: int, on_score: Callable[[int, dict, dict], None] | None = None,
                  bins: jax.Array | None = None, net: RewardNet | None = None, reward_scale: float = 1.0,
                  ahead: int = 1) -> dict:
    """Fit ``net`` (by default the :class:`RewardNet` of its own convolutions) on rows ``train`` (squared error, or
    with ``bins`` the two-hot cross-entropy over them, times ``reward_scale``, plus the reconstruction's summed
    squared error where the net has a decoder; Adam 3e-4) and return its reward-events entry on rows ``test``:
    ``{outcome: (steps, mean prediction), "correlation": r}``, with a decoder also ``"reconstruction"``, its mean
    summed squared error per frame; ``on_score(update, entry on test, entry on train)`` four times on the way, the
    last after the last update. ``ahead``: the frames and actions ``before`` reads (:func:`frame_inputs`,
    :func:`action_inputs`)."""
    outputs = 1 if bins is None else bins.shape[0]
    if net is None:
        net = RewardNet(image=obs.ndim == 5, outputs=outputs)
    if net.outputs != outputs:
        raise ValueError(f"the net has {net.outputs} outputs, the loss reads {outputs}")

    def recon_error(recon, x):
        return jnp.sum((recon - preprocess(x)) ** 2, axis=tuple(range(1, x.ndim)))

    def predicted(params, x, a, key):
        out, recon = net.apply(params, x, a, key)
        return (out[:, 0] if bins is None else twohot_mean(out, bins)), None if recon is None else recon_error(recon, x)

    def loss(params, x, a, r, key):
        out, recon = net.apply(params, x, a, key)
        fit = jnp.mean((out[:, 0] - r) ** 2) if bins is None else jnp.mean(twohot_loss(out, r, bins))
        fit = reward_scale * fit
        if recon is None:
            return fit
        return fit + jnp.mean(recon_error(recon, x))

    use_action = frames == "before"

    def inputs(pairs):
        a = action_inputs(action, pairs, num_actions, ahead) if use_action else None
        return frame_inputs(obs, pairs, frames, ahead), a

    init_key = jax.random.PRNGKey(seed)
    score_key, update_key = jax.random.fold_in(init_key, 1), jax.random.fold_in(init_key, 2)
    params = net.init(init_key, *inputs(train[:1]), init_key)
    tx = optax.adam(3e-4)
    opt = tx.init(params)

    @jax.jit
    def update(params, opt, x, a, r, key):
        grads = jax.grad(loss)(params, x, a, r, key)
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

    def score(pairs: np.ndarray, paid: np.ndarray) -> dict:
        p, errors = zip(*(predict(params, *inputs(pairs[i:i + 256]), score_key) for i in range(0, len(pairs), 256)))
        entry = outcome_entry(np.concatenate(p), paid)
        if errors[0] is not None:
            entry["reconstruction"] = float(np.concatenate(errors).mean())
        return entry

    for i in range(1, updates + 1):
        if balanced:
            rows = np.concatenate([rng.choice(rewarded, batch // 2), rng.choice(unrewarded, batch - batch // 2)])
        else:
            rows = rng.choice(train, batch)
        params, opt = update(params, opt, *inputs(rows), reward[rows[:, 0], rows[:, 1]],
                             jax.random.fold_in(update_key, i))
        if on_score is not None and i % max(1, updates // 4) == 0:
            on_score(i, score(test, paid_test), score(train, paid_train))
    return score(test, paid_test)


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
    parser.add_argument("--train-rows", type=int, metavar="N",
                        help="train on the earliest N of the rows before --from (default: all of them)")
    parser.add_argument("--ahead", type=int, default=1, metavar="K",
                        help="--frames before: foresee r_t from o_{t-K}, o_{t-K+1} and the actions a_{t-K+1} .. a_t, "
                             "as the world model's K-th imagined step (default 1: o_{t-1}, o_t and a_t)")
    parser.add_argument("--loss", choices=LOSSES, default="squared",
                        help="squared error, or the world model's two-hot cross-entropy over the run's bins")
    parser.add_argument("--net", choices=NETS, default="frames",
                        help="the network's own convolutions, or the run's encoder, or its encoder and latent "
                             "(--frames after)")
    parser.add_argument("--recon", action="store_true",
                        help="also reconstruct the frame through the run's decoder (--net encoder or latent)")
    parser.add_argument("--stop-recon-gradient", action="store_true",
                        help="the decoder reads the features through stop_gradient: the reward alone shapes them "
                             "(--recon)")
    parser.add_argument("--head", choices=HEADS, default="plain",
                        help="the reward's head: the net's own (two 256-wide Dense layers), or the run's reward head "
                             "(mlp_hidden, mlp_layers, reward_norm, reward_zero_init: --set them)")
    parser.add_argument("--set", dest="changes", action="append", default=[], type=setting, metavar="NAME=VALUE",
                        help="a world-model setting of the pieces --net encoder / latent and --head world_model build, "
                             "e.g. latent_groups=32, or the reward's weight reward_loss_scale")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.net != "frames" and args.frames != ["after"]:
        parser.error(f"--net {args.net} reads the run's encoder, of one frame: it needs --frames after, got "
                     f"{' '.join(args.frames)}")
    if args.stop_recon_gradient and not args.recon:
        parser.error("--stop-recon-gradient stops the decoder's gradient: it needs --recon")
    if args.changes and args.net == "frames" and args.head == "plain":
        parser.error("--set changes the run's pieces that --net encoder / latent and --head world_model build: the "
                     "frames network with its own head has none")
    if not 0 < args.start < 1:
        parser.error(f"--from must be in (0, 1), got {args.start}")
    if args.updates < 1 or args.batch < 2:
        parser.error(f"--updates must be >= 1 and --batch >= 2, got {args.updates}, {args.batch}")
    if args.train_rows is not None and args.train_rows < 1:
        parser.error(f"--train-rows must be >= 1, got {args.train_rows}")
    if args.ahead < 1:
        parser.error(f"--ahead must be >= 1, got {args.ahead}")
    if args.ahead > 1 and args.frames != ["before"]:
        parser.error(f"--ahead foresees the reward from the frames before it: it needs --frames before, got "
                     f"{' '.join(args.frames)}")
    try:
        parts, step, state = open_world_model_run(args.run_dir)
    except RunDirError as error:
        parser.error(str(error))
    try:
        config = with_settings(parts.config, dict(args.changes))
    except ConfigError as error:
        parser.error(f"--set: {error}")
    replay, size = state.replay, int(state.replay.size)
    first_row = int(args.start * size)
    train, test = usable_rows(np.asarray(replay.first[:size]), first_row, args.ahead)
    train = train[:args.train_rows]
    if len(train) == 0 or len(test) == 0:
        parser.error(f"--from {args.start} of {size} rows leaves {len(train)} rows to train on and {len(test)} "
                     "to score")
    obs = np.asarray(replay.obs[:size])
    action, reward = np.asarray(replay.action[:size]), np.asarray(replay.reward[:size])
    paid = reward[train[:, 0], train[:, 1]]
    print(f"{parts.config.env_name}: {len(train)} rows to train on ({int((paid != 0).sum())} paid), {len(test)} "
          f"scored, {args.updates} updates of {args.batch}" + (", balanced" if args.balanced else "")
          + (f", {args.ahead} steps ahead" if args.ahead > 1 else "")
          + f", {args.loss} loss, {args.net} net" + (" with the reconstruction" if args.recon else "")
          + (" (its gradient stopped)" if args.stop_recon_gradient else "")
          + (", the run's reward head" if args.head == "world_model" else "")
          + (f", {dict(args.changes)}" if args.changes else ""), flush=True)
    bins = value_bins(config) if args.loss == "twohot" else None
    try:
        net = make_reward_net(config, parts.obs_shape, args.net, args.recon, 1 if bins is None else bins.shape[0],
                              not args.stop_recon_gradient, args.head)
    except ValueError as error:
        parser.error(str(error))
    table = {}
    for frames in args.frames:
        def report(i, entry, trained, frames=frames):
            recon = (f"; reconstruction error {entry['reconstruction']:.1f} ({trained['reconstruction']:.1f})"
                     if "reconstruction" in entry else "")
            print(f"{frames}, update {i}: correlation {signed(entry['correlation'])} "
                  f"(on the training rows {signed(trained['correlation'])}){recon}", flush=True)

        try:
            table[frames] = fit_and_score(obs, action, reward, train, test, frames, parts.num_actions, args.updates,
                                          args.batch, args.balanced, args.seed, report, bins, net,
                                          config.reward_loss_scale, args.ahead)
        except ValueError as error:
            parser.error(str(error))
    print("\n" + format_table(table))
    return {"checkpoint": step, "first_row": first_row, "train_rows": len(train), "test_rows": len(test),
            "table": table}


if __name__ == "__main__":
    compile_cache.enable()
    main()
