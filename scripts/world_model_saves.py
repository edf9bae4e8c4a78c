"""Does a world-model run's imagination let its actor save the penalties it foresees?
(agents/world_model/imagined_saves.py)

    python scripts/world_model_saves.py RUN_DIR [--rows 0-10000] [--leads 1-11] [--tail 4] [--penalties 100]
    python scripts/world_model_saves.py PONG_RUN_DIR --returns 100 [--rows ...] [--leads ...]

For the first ``--penalties`` penalised rows (a reward below zero) of the run's replay in ``--rows``, per lead (agent
steps from the first imagined one to the penalised one, as ``scripts/atari_avoidable.py`` counts them on the
emulator): the share of penalties the recorded actions' imagination foresees (a predicted reward below
``-threshold`` in the plan's ``lead + tail`` steps), and of those the share some held action saves, and each action
(the env's action indices; Atari's minimal set in ALE's order). The plans may run past the run's ``horizon``: the
question is what the model knows of the game, which imagination reaches only up to its horizon.

With ``--returns`` (a Pong run), the other side: at the first ``--returns`` balls the paddle returned, per lead to
the row the point would have been paid, the share the recorded actions' imagination loses anyway, and the share
some held action, each, and every one loses; ``scripts/atari_avoidable.py Pong --returns`` gives the emulator's.
"""

from __future__ import annotations

import argparse

import jax

from ssmrl.agents.world_model.imagined_saves import (
    losses_by_lead,
    penalty_windows,
    return_windows,
    saves_flags,
    shares_by_lead,
)
from ssmrl.envs.atari.avoidable import leads
from ssmrl.experiment import compile_cache
from ssmrl.experiment.run_dir import RunDirError
from ssmrl.experiment.world_model import open_world_model_run


def row_range(text: str) -> tuple[int, int]:
    """``"LO-HI"`` -> ``(LO, HI)``."""
    try:
        lo, hi = (int(x) for x in text.split("-"))
        return lo, hi
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'LO-HI' (integers), got {text!r}") from None


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a train/world_model.py run directory")
    parser.add_argument("--rows", type=row_range, default=(0, 2**31 - 1),
                        help="replay rows LO-HI whose penalties are measured (default: all)")
    parser.add_argument("--leads", type=leads, default=list(range(1, 12)), help="imagined steps up to the penalty")
    parser.add_argument("--tail", type=int, default=4, help="imagined steps a plan runs past the penalty")
    parser.add_argument("--penalties", type=int, default=100, help="penalised rows measured (the first in --rows)")
    parser.add_argument("--threshold", type=float, default=0.5, help="a predicted reward below -threshold is a penalty")
    parser.add_argument("--returns", type=int, help="Pong runs: measure this many returned balls instead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = args.rows
    if not 0 <= rows[0] < rows[1] or args.threshold <= 0:
        parser.error(f"--rows must be LO-HI with 0 <= LO < HI and --threshold > 0, got {rows[0]}-{rows[1]}, "
                     f"{args.threshold}")
    try:
        parts, step, state = open_world_model_run(args.run_dir)
    except RunDirError as error:
        parser.error(str(error))
    if args.returns is not None and parts.config.env_name != "atari/Pong":
        parser.error(f"--returns reads Pong's frames; this run is on {parts.config.env_name!r}")
    try:
        if args.returns is None:
            windows, lead = penalty_windows(state.replay, parts.config.imag_context, args.leads, args.tail, rows,
                                            args.penalties)
        else:
            windows, lead = return_windows(state.replay, parts.config.imag_context, args.leads, args.tail, rows,
                                           args.returns)
    except ValueError as error:
        parser.error(str(error))
    flags = saves_flags(parts, state.params["wm"], windows, lead, args.tail, args.threshold,
                        jax.random.PRNGKey(args.seed))
    names = [f"action {a}" for a in range(parts.num_actions)]
    what = "penalties" if args.returns is None else "Pong's returns"
    print(f"{parts.config.model} on {parts.config.env_name}, checkpoint {step}: {what} in replay rows "
          f"{rows[0]}-{min(rows[1], int(state.replay.size))}, plans run {args.tail} steps past them; a predicted "
          f"reward below -{args.threshold} is a penalty")
    if args.returns is None:
        out = shares_by_lead(flags, lead)
        print(f"| lead | penalties | foreseen | saved by a held action (of foreseen) | {' | '.join(names)} |")
        print("|" + "---|" * (4 + len(names)))
        for r in out:
            held = " | ".join(f"{x:.2f}" for x in r["held"])
            print(f"| {r['lead']} | {r['penalties']} | {r['foreseen']:.2f} | {r['saved']:.2f} | {held} |")
        return out
    out = losses_by_lead(flags, lead)
    print(f"| lead | returns | lost with the recorded actions | lost by some held action | lost holding "
          f"{' | lost holding '.join(names)} | lost by every held action |")
    print("|" + "---|" * (5 + len(names)))
    for r in out:
        held = " | ".join(f"{x:.2f}" for x in r["held"])
        print(f"| {r['lead']} | {r['returns']} | {r['foreseen']:.2f} | {r['held_any']:.2f} | {held} "
              f"| {r['held_all']:.2f} |")
    return out

if __name__ == "__main__":
    compile_cache.enable()
    main()
