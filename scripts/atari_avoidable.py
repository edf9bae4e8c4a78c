"""How many agent steps before a penalty (a lost point, a punch taken) can an Atari agent still avoid it?
(envs/atari/avoidable.py)

    python scripts/atari_avoidable.py Pong [--penalties 60] [--leads 1-20] [--tail 4] [--seed 0]
    python scripts/atari_avoidable.py Pong --returns 60 [--leads 1-11]

Plays ``--penalties`` penalised steps of random play, then for each lead prints the share of them that holding one
action, or moving (any action but NOOP for 1 .. lead steps, then NOOP), from that many steps before avoids: the
steps where the agent's choices still matter, which its imagination must reach. With ``--returns`` (Pong), the
other side: random play until that many balls the paddle returned, and per lead the share of them that holding
some action, each action, and every action loses.
"""

from __future__ import annotations

import argparse

from ssmrl.envs.atari import GAMES
from ssmrl.envs.atari.avoidable import avoidable, leads, losable_returns


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("game", choices=GAMES, metavar="GAME", help=f"an Atari100k game: {', '.join(GAMES)}")
    parser.add_argument("--penalties", type=int, default=60, help="penalised steps of random play measured")
    parser.add_argument("--leads", type=leads, default=list(range(1, 21)), help="agent steps before the penalty")
    parser.add_argument("--tail", type=int, default=4, help="steps a plan runs past the penalised step")
    parser.add_argument("--returns", type=int, help="Pong only: measure this many returned balls instead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.returns is not None:
        if args.game != "Pong":
            parser.error(f"--returns reads Pong's RAM; got game {args.game!r}")
        return print_returns(parser, args)
    try:
        out = avoidable(args.game, args.penalties, args.leads, args.tail, args.seed)
    except ValueError as error:
        parser.error(str(error))
    print(f"{args.game}: {args.penalties} penalties in {out['steps']} agent steps of random play, seed {args.seed}; "
          f"plans run {args.tail} steps past the penalty")
    print(f"| lead (agent steps) | penalties | held: any | held: {' | held: '.join(out['actions'])} "
          "| move then stop | any plan |")
    print("|" + "---|" * (5 + len(out["actions"])))
    for row in out["rows"]:
        held = " | ".join(f"{x:.2f}" for x in row["held"])
        print(f"| {row['lead']} | {row['penalties']} | {row['held_any']:.2f} | {held} | {row['move_then_stop']:.2f} "
              f"| {row['any']:.2f} |")
    return out


def print_returns(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    try:
        out = losable_returns(args.returns, args.leads, args.tail, args.seed)
    except ValueError as error:
        parser.error(str(error))
    print(f"Pong: {args.returns} returned balls in {out['steps']} agent steps of random play, seed {args.seed}; "
          f"leads count to the row the point would have been paid; plans run {args.tail} steps past it")
    print(f"| lead (agent steps) | returns | lost by some held action | lost holding "
          f"{' | lost holding '.join(out['actions'])} | lost by every held action |")
    print("|" + "---|" * (4 + len(out["actions"])))
    for row in out["rows"]:
        held = " | ".join(f"{x:.2f}" for x in row["held"])
        print(f"| {row['lead']} | {row['returns']} | {row['held_any']:.2f} | {held} | {row['held_all']:.2f} |")
    return out


if __name__ == "__main__":
    main()
