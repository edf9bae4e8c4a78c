"""Does a world-model agent's model see the rewards of its replay? (agents/world_model/reward_events.py)

    python scripts/world_model_reward_events.py RUN_DIR [--from 0.5] [--windows 512]
    python scripts/world_model_reward_events.py RUN_DIR --refit 3000 --every 500 [--set hidden=128 ...]
    python scripts/world_model_reward_events.py RUN_DIR --refit 1000 --warm [--set reward_loss_scale=1 ...]

RUN_DIR is a `train/world_model.py` run; its newest checkpoint is read. ``--windows`` windows per env, spread
over the replay from the fraction ``--from`` of its rows on, are replayed through the model as the agent's
imagination sees them (``imag_context`` frames observed, then ``horizon`` steps imagined with the recorded
actions). The table gives the model's mean predicted reward where the env paid less than, exactly and more
than zero, for the observed steps and for imagined steps 1, 2, half the horizon, the horizon (and, with
``reward_ahead`` heads, every step up to ``reward_ahead + 1``), with the correlation of predicted and paid rewards.
A model whose predictions do not move with what was paid gives its actor nothing to learn from. A second table
gives the share of latent groups in which imagination's first latent (the prior after the observed frames) has the
real next frame's most likely class, by what imagined steps 1 and 2 were paid: the later imagined steps are built on
that latent. A model with ``reward_ahead`` heads gets a third: their predictions of the rewards 1 .. K steps later
from the observed state, against what was paid then. Then, whether its frames draw what moves at all
(agents/world_model/moving_content.py): the squared error on the values away from each window's median frame, as a
share of that still frame's (1: no better than drawing the still frame); on a game whose objects are read (Pong: the
ball, the agent's paddle, the opponent's; agents/world_model/drawn_objects.py), per object, how much of it the
frames draw where it is, beside what they paint elsewhere in its region. Another table says whether imagination
answers the actions (agents/world_model/action_response.py): how far apart the imagined frames of two actions held
from the last observed step on are, beside how far another sampling key moves them, and the range of the rewards
predicted for the held actions; a model that imagines the same game whatever the actor does gives it no advantage to
learn. Then the return imagination gives each action, held or taken once, beside what the env paid from each action
the replay took: a preference the env does not pay for is one the actor learns from the model alone. On a game whose
paddle is read (Pong; agents/world_model/paddle_response.py), a table gives the same answer in the paddle's
rows: how far the imagined paddle stands from the real one, and how much further down a held down action puts it
than a held up action, beside how much further the replay's own paddle moved after that many down steps than after
as many up steps. And whether the model's state holds the paddle's row at all (agents/world_model/state_probe.py):
linear probes of it from the posterior latent, the prior before the frame and the sequence model's output, fitted on
the rows before the probed ones and scored on the probed rows, beside the same probes of an untrained model's.

``--refit N`` reads instead a fresh world model trained alone for N updates on the replay's rows before the
probed ones (the run's settings with each ``--set NAME=VALUE`` changed, a world-model config field; the value
read as JSON where it parses, else as a string): does a larger model, or more updates, see the rewards the
agent's model missed? ``--every`` prints the correlations as the refit goes, with the losses, the moving pixels' error
of the observed frames and the actions' and sampling keys' distances at imagined frame 1. ``--warm`` starts the refit
from the run's own world model (a fresh optimiser) instead: what more updates, or a changed loss, do to the model the
agent has.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.agents.config import ConfigError
from ssmrl.agents.world_model.action_response import MEASURES as ANSWER
from ssmrl.agents.world_model.action_response import (
    format_response,
    format_returns,
    make_action_response,
    make_action_returns,
)
from ssmrl.agents.world_model.agent import agent_keys, build, init_params
from ssmrl.agents.world_model.drawn_objects import GAME_OBJECTS, format_drawn, make_drawn_objects
from ssmrl.agents.world_model.moving_content import MEASURES as CONTENT
from ssmrl.agents.world_model.moving_content import format_content, make_moving_content
from ssmrl.agents.world_model.paddle_response import GAME_PADDLES, format_paddle, make_paddle_response
from ssmrl.agents.world_model.paddle_response import MEASURES as PADDLE
from ssmrl.agents.world_model.probe import fit_world_model, setting, with_settings
from ssmrl.agents.world_model.reward_events import (
    OUTCOMES,
    format_table,
    make_reward_events,
    replay_windows,
    signed,
    window_length,
)
from ssmrl.agents.world_model.state_probe import FEATURES, WARMUP, format_probe, make_state_probe, probe_windows
from ssmrl.agents.world_model.state_probe import WINDOW as PROBE_WINDOW
from ssmrl.experiment import compile_cache
from ssmrl.experiment.run_dir import RunDirError
from ssmrl.experiment.world_model import open_world_model_run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a train/world_model.py run directory")
    parser.add_argument("--from", dest="start", type=float, default=0.5,
                        help="fraction of the replay's rows before the first probed window")
    parser.add_argument("--windows", type=int, default=512, help="probed windows per env (at most: one per row)")
    parser.add_argument("--refit", type=int, default=0, metavar="N",
                        help="probe a fresh world model trained alone for N updates on the rows before --from")
    parser.add_argument("--set", dest="changes", action="append", default=[], type=setting, metavar="NAME=VALUE",
                        help="with --refit: a world-model setting of the refit model, e.g. hidden=128")
    parser.add_argument("--every", type=int, default=0, help="with --refit: print the correlations every N updates")
    parser.add_argument("--warm", action="store_true", help="with --refit: start from the run's world model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.start < 1:
        parser.error(f"--from must be in [0, 1), got {args.start}")
    if args.windows < 1 or args.refit < 0 or args.every < 0:
        parser.error(f"--windows must be >= 1 and --refit, --every >= 0, got {args.windows}, {args.refit}, "
                     f"{args.every}")
    if (args.changes or args.every or args.warm) and not args.refit:
        parser.error("--set, --every and --warm change a --refit world model; add --refit N")
    try:
        parts, step, state = open_world_model_run(args.run_dir)
    except RunDirError as error:
        parser.error(str(error))
    config = parts.config
    size = int(state.replay.size)
    first_row = int(args.start * size)
    wm_params = state.params["wm"]
    if args.refit:
        try:
            parts = build(with_settings(config, dict(args.changes)))
        except ConfigError as error:
            parser.error(f"--set: {error}")
        if args.warm:  # shapes only: nothing is initialised
            fresh = jax.eval_shape(lambda: init_params(parts, jax.random.PRNGKey(0))["wm"])
            if jax.tree.map(jnp.shape, fresh) != jax.tree.map(jnp.shape, wm_params):
                parser.error(f"--warm: the run's world model has other parameters than one with {dict(args.changes)}")
        if first_row < parts.config.batch_length:
            parser.error(f"--from {args.start} leaves {first_row} rows to refit on, fewer than a "
                         f"{parts.config.batch_length}-step window")
    length = window_length(parts)
    if size - first_row < length:
        parser.error(f"--from {args.start} leaves {size - first_row} rows, fewer than a {length}-step window")
    windows = replay_windows(state.replay, length, first_row, args.windows)
    events, drawn = make_reward_events(parts, windows), make_moving_content(parts, windows)
    game = GAME_OBJECTS.get(config.env_name)
    objects = None if game is None else make_drawn_objects(parts, windows, *game)
    imagines = parts.config.horizon >= 2  # else the windows end before the first imagined frame
    answer = make_action_response(parts, windows) if imagines else None
    # what the env paid from each action the probed rows took, and their paddle's own moves
    probed = {name: np.asarray(getattr(state.replay, name)[first_row:size]) for name in ("action", "reward", "first")}
    returns = make_action_returns(parts, windows, probed) if imagines else None
    paddle, paddles = GAME_PADDLES.get(config.env_name), None
    if paddle and imagines:
        paddles = make_paddle_response(parts, windows, {**probed, "obs": np.asarray(state.replay.obs[first_row:size])},
                                       *paddle)
    states, probe_length = None, min(PROBE_WINDOW, first_row, size - first_row)
    if paddle and probe_length > WARMUP:  # fitted on the rows a refit trains on, scored on the probed rows
        states = make_state_probe(parts, probe_windows(state.replay, 0, first_row, probe_length),
                                  probe_windows(state.replay, first_row, size, probe_length), paddle[0])
    key = jax.random.PRNGKey(args.seed)
    refitted = ""
    if args.refit:  # the refitted backbone is the run's unless --set model= names another
        whose = "the run's" if args.warm else "a fresh"
        refitted = f"; {whose} {parts.config.model} model refitted on rows 0-{first_row}, {dict(args.changes)}"
    print(f"{config.model} on {config.env_name}, checkpoint {step}, {size} replay rows per env; windows from row "
          f"{first_row}{refitted}", flush=True)
    if paddle and states is None:
        print(f"The paddle's row is not probed from the model's state: rows 0-{first_row} and {first_row}-{size} "
              f"need more than {WARMUP} rows each")
    progress = []
    if args.refit:
        def report(i, params, metrics):
            tables, content = events(params, key), drawn(params, key)
            actions = None if answer is None else answer(params, key)
            drawn_objects = None if objects is None else objects(params, key)
            paddle_table = None if paddles is None else paddles(params, key)
            state_table = None if states is None else states(params, key)
            progress.append({"update": i, "table": tables["rewards"], "agreement": tables.get("agreement"),
                             "ahead": tables.get("ahead"), "content": content, "actions": actions,
                             "objects": drawn_objects, "paddle": paddle_table,
                             "state_probe": state_table, "reward_loss": metrics["reward_loss"]})
            correlations = ", ".join(f"{name} {signed(e['correlation'])}"
                                     for name, e in {**tables["rewards"], **tables.get("ahead", {})}.items())
            extra = "".join(f", {name} {metrics[metric]:.3f}" for metric, name in (
                ("prior_reward_loss", "prior-fed reward loss"), ("reward_ahead_loss", "reward-ahead loss"))
                if metric in metrics)
            agreement = tables.get("agreement")
            agrees = ("" if agreement is None else "; first latent agrees, by imagined 2's payment: " + ", ".join(
                f"{outcome} {signed(agreement['imagined 2'][outcome][1])}" for outcome in OUTCOMES))
            moving = content["observed"][CONTENT[0]]
            drawing = "" if moving is None else f"; moving pixels' error {moving:.3f} of the still frame's (observed)"
            if drawn_objects is not None:
                drawing += "; drawn / elsewhere (observed): " + ", ".join(
                    f"{name} {row['observed']['drawn']:.2f} / {row['observed']['elsewhere']:.2f}"
                    for name, row in drawn_objects.items() if row["observed"] is not None)
            if actions is not None:
                first = actions["imagined 1"]
                drawing += (f"; imagined frame 1: actions apart {first[ANSWER[0]]:.5f}, sampling keys apart "
                            f"{first[ANSWER[1]]:.5f}")
            if paddle_table is not None:
                shown = {k: paddle_table[k] for k in ("imagined 1", "imagined 2") if k in paddle_table}
                drawing += "; paddle's rows, down minus up (replay), error: " + ", ".join(
                    f"{k} {e[PADDLE[2]]:.2f} ({e[PADDLE[3]]:.2f}), {e[PADDLE[0]]:.2f}" for k, e in shown.items())
            if state_table is not None:
                drawing += "; paddle's row read linearly, held-out error: " + ", ".join(
                    f"{name} {state_table[name]['error']:.2f}" for name in FEATURES)
            span = "the update" if args.every == 1 else f"{args.every} updates"
            print(f"update {i}: correlation {correlations}; mean over {span}: reconstruction loss "
                  f"{metrics['recon_loss']:.2f}, reward loss "
                  f"{metrics['reward_loss']:.3f}, representation KL {metrics['rep_kl']:.2f} nats{extra}{agrees}"
                  f"{drawing}", flush=True)

        older_rows = state.replay.replace(size=jnp.asarray(first_row, jnp.int32))  # the probed rows held out
        wm_params = fit_world_model(parts, older_rows, args.refit, seed=args.seed, every=args.every,
                                    on_metrics=report, params=wm_params if args.warm else None)[0]
    tables = events(wm_params, key)
    print("\n" + format_table(tables["rewards"]))
    if "agreement" in tables:
        print("\nImagination's first latent: the share of latent groups whose most likely class under the prior is the "
              "real next frame's\n\n" + format_table(tables["agreement"], "groups agreeing (windows)"))
    if "ahead" in tables:
        print("\nThe rewards k steps later read from the observed state (the reward_ahead heads)\n\n"
              + format_table(tables["ahead"]))
    content = drawn(wm_params, key)
    print("\nWhat the frames draw: the squared error on the values that move (away from each window's median frame), "
          "a share of the median frame's\n\n" + format_content(content))
    drawn_objects = None
    if objects is not None:
        drawn_objects = objects(wm_params, key)
        print("\nThe game's objects: the frames' distance from the background on each object's pixels, a share of the "
              "real frame's (drawn), and on the rest of its region, a share of the real object's per pixel "
              "(elsewhere)\n\n" + format_drawn(drawn_objects))
    actions = None
    if answer is not None:
        actions = answer(wm_params, key)
        print(f"\nImagination's answer to the actions: each of the {parts.num_actions} actions held from the last "
              "observed step on, one sampling key\n\n" + format_response(actions))
    action_returns = None
    if returns is not None:
        action_returns = returns(wm_params, key)
        print(f"\nThe return imagination gives each action: the rewards predicted for imagined steps 1-"
              f"{parts.config.horizon - 1} summed, mean over windows; beside what the env paid over as many steps "
              "from each action the probed rows took (the replay's policy after it)\n\n"
              + format_returns(action_returns))
    paddle_table = None
    if paddles is not None:
        paddle_table = paddles(wm_params, key)
        print("\nThe agent's paddle: where imagination puts it, in the frame's rows (one sampling key), and how much "
              "further down a held down action puts it than a held up one, beside the replay's own moves\n\n"
              + format_paddle(paddle_table))
    state_tables = None
    if states is not None:
        untrained = init_params(parts, agent_keys(jax.random.PRNGKey(args.seed))[0])["wm"]  # a fresh refit's start
        state_tables = {"this model": states(wm_params, key), "untrained": states(untrained, key)}
        print(f"\nThe agent's paddle's row read linearly from the model's state: probes fitted on rows 0-{first_row}, "
              f"scored on the rows after\n\n" + format_probe(state_tables, "rows"))
    return {"checkpoint": step, "first_row": first_row, "table": tables["rewards"],
            "agreement": tables.get("agreement"), "ahead": tables.get("ahead"), "content": content,
            "objects": drawn_objects, "actions": actions, "returns": action_returns, "paddle": paddle_table,
            "state_probe": state_tables, "progress": progress}


if __name__ == "__main__":
    compile_cache.enable()  # a rerun (on another checkpoint, with other flags) loads what it compiled before
    main()
