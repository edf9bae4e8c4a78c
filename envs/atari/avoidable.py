"""How many agent steps before a penalty can an Atari agent still avoid it?

An agent learns to avoid a penalty (a lost point in Pong, a punch taken in Boxing) only from the steps where some
action still changes it, so this lead time bounds how far ahead its value estimates, and a world model's imagination,
must carry the penalty for the actor to learn from it. Measured on the emulator itself: random play (actions uniform
over the minimal set) under the Atari100k protocol of :mod:`~ssmrl.envs.atari.env` (frame skip 4, no sticky
actions), the emulator cloned before every agent step; for each penalty (a step whose summed reward is negative)
and each lead ``k``, the emulator is restored to where the plan's ``k``-th action is the penalised step's and run
under two families of plans for ``k + tail`` steps:

* ``held``: one action held throughout (each of the minimal set);
* ``move then stop``: an action other than NOOP held for ``j = 1 .. k`` steps, then NOOP.

A plan avoids the penalty when none of its steps is penalised. Leads that would cross an episode's start are
skipped. The emulator is deterministic (no sticky actions), so a plan's outcome is a fact of the game, not a sample.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np

from ssmrl.envs.atari import pong
from ssmrl.envs.atari.env import FRAME_SKIP
from ssmrl.envs.atari.scores import rom_name


def leads(text: str) -> list[int]:
    """``"1-20"`` or ``"1,4,8"`` -> the leads; an argparse ``type``."""
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"leads are 'LO-HI' or 'K,K,...' (integers), got {text!r}") from None


def new_emulator(game: str, seed: int = 0):
    """A raw ``ALEInterface`` of Atari100k ``game`` (one emulator frame per ``act``, no sticky actions) and its
    minimal action set."""
    from ale_py import ALEInterface, LoggerMode, roms

    rom = rom_name(game)
    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("frame_skip", 1)
    ale.loadROM(roms.get_rom_path(rom))
    ale.reset_game()
    return ale, list(ale.getMinimalActionSet())


def agent_step(ale, action) -> float:
    """One agent step: ``action`` held for ``FRAME_SKIP`` emulator frames; the summed reward."""
    return sum(ale.act(action) for _ in range(FRAME_SKIP))


def avoids(ale, state, plan: Sequence) -> bool:
    """Whether the emulator restored to ``state`` and run under ``plan`` (one action per agent step) takes no
    penalty."""
    ale.restoreState(state)
    return all(agent_step(ale, action) >= 0 for action in plan)


def share(avoided: np.ndarray) -> float:
    """The share of ``True`` in ``avoided``; NaN where no penalty was measured."""
    return float(avoided.mean()) if avoided.size else float("nan")


def random_play(ale, actions: list, seed: int, event, events: int, after: int = 0
                ) -> tuple[list, list[float], list, list[int]]:
    """Random play (actions uniform over ``actions``) until ``events`` events have each been followed by ``after``
    more rows: ``(before, reward, ram, found)``, per row the emulator's state before the agent step (None on the row
    an episode's reset takes, whose reward is 0 and RAM the reset's), its summed reward and the RAM after it, and the
    events' rows. ``event(reward, ram)``, called after each agent step with the rows so far, returns the row of an
    event that step reveals, or None."""
    rng = np.random.default_rng(seed)
    before, reward, ram, found = [], [], [], []
    while len(found) < events or len(before) <= found[events - 1] + after:
        if ale.game_over():
            ale.reset_game()
            before.append(None), reward.append(0.0), ram.append(ale.getRAM())
        before.append(ale.cloneState())
        reward.append(agent_step(ale, actions[rng.integers(len(actions))]))
        ram.append(ale.getRAM())
        row = event(reward, ram)
        if row is not None:
            found.append(row)
    return before, reward, ram, found


def avoidable(game: str, penalties: int, leads: Sequence[int], tail: int = 4, seed: int = 0) -> dict:
    """Random play of ``game`` until ``penalties`` penalised steps, then per lead in ``leads`` (agent steps before
    the penalised one) the share of penalties some plan avoids. Returns ``{"actions": [names], "steps": random play's
    agent steps, "rows": [{"lead", "penalties" (those measured), "held" ([share avoided holding each action]),
    "held_any", "move_then_stop", "any"}]}``."""
    if penalties < 1 or tail < 0 or not leads or min(leads) < 1:
        raise ValueError(f"penalties must be >= 1, tail >= 0 and leads non-empty and >= 1, got penalties "
                         f"{penalties}, tail {tail}, leads {list(leads)}")
    ale, actions = new_emulator(game, seed)
    before, _, _, penalised = random_play(ale, actions, seed,
                                          lambda reward, ram: len(reward) - 1 if reward[-1] < 0 else None, penalties)
    noop = next(a for a in actions if a.name == "NOOP")  # every minimal action set has it
    moves = [a for a in actions if a != noop]
    rows = []
    for k in leads:
        held, moved = [], []
        for t in penalised:
            if t - k + 1 < 0 or any(s is None for s in before[t - k + 1:t + 1]):
                continue
            state, steps = before[t - k + 1], k + tail
            held.append([avoids(ale, state, [a] * steps) for a in actions])
            moved.append(any(avoids(ale, state, [a] * j + [noop] * (steps - j))
                             for a in moves for j in range(1, k + 1)))
        held, moved = np.asarray(held, bool).reshape(-1, len(actions)), np.asarray(moved, bool)
        rows.append({"lead": k, "penalties": len(moved), "held": [share(h) for h in held.T],
                     "held_any": share(held.any(1)), "move_then_stop": share(moved),
                     "any": share(held.any(1) | moved)})
    return {"actions": [a.name for a in actions], "steps": sum(s is not None for s in before), "rows": rows}


def losable_returns(returns: int, leads: Sequence[int], tail: int = 4, seed: int = 0) -> dict:
    """The other side of :func:`avoidable` in Pong: random play until ``returns`` balls the paddle returned
    (:func:`~ssmrl.envs.atari.pong.returns_in_ram`), then per lead (agent steps before the row where the point
    would have been paid, the turn + :data:`~ssmrl.envs.atari.pong.PAID_AFTER`) the share of returns that holding
    some action, and holding each, for ``lead + tail`` steps loses (a penalised step), and that holding every
    action loses. Where the paddle's moves still matter, some held action loses. Returns ``{"actions", "steps",
    "rows": [{"lead", "returns" (those measured), "held" ([share lost holding each action]), "held_any",
    "held_all"}]}``."""
    if returns < 1 or tail < 0 or not leads or min(leads) < 1:
        raise ValueError(f"returns must be >= 1, tail >= 0 and leads non-empty and >= 1, got returns {returns}, "
                         f"tail {tail}, leads {list(leads)}")
    ale, actions = new_emulator("Pong", seed)

    def turn(reward, ram):
        found = pong.returns_in_ram([r[pong.BALL_X_RAM] for r in ram[-3:]])
        return len(ram) - 2 if found.size else None

    before, _, _, turns = random_play(ale, actions, seed, turn, returns, after=pong.PAID_AFTER)
    paid = np.asarray(turns[:returns]) + pong.PAID_AFTER
    rows = []
    for k in leads:
        lost = [[not avoids(ale, before[p - k + 1], [a] * (k + tail)) for a in actions]
                for p in paid if p - k + 1 >= 0 and not any(s is None for s in before[p - k + 1:p + 1])]
        lost = np.asarray(lost, bool).reshape(-1, len(actions))
        rows.append({"lead": k, "returns": len(lost), "held": [share(h) for h in lost.T],
                     "held_any": share(lost.any(1)), "held_all": share(lost.all(1))})
    return {"actions": [a.name for a in actions], "steps": sum(s is not None for s in before), "rows": rows}
