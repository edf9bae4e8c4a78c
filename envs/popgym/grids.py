"""POPGym's grid games in pure JAX, each at Easy / Medium / Hard.

- Battleship (8x8 / 10x10 / 12x12, ships 2, 3, 3, 4): fire at hidden tiles, observe hit / miss;
  +1/needed_hits per hit, -1/(tiles - needed_hits) per miss; ends when all ships are sunk or
  after one shot per tile.
- MineSweeper (4x4, 2 mines / 6x6, 6 mines / 8x8, 10 mines): click hidden tiles, observe the
  3x3 mine count; +1/L per new safe tile, -0.5/(L-2) per repeated click, -0.5-1/L and the end
  on a mine (L = safe tiles = episode length).
- LabyrinthEscape (10x10 / 14x14 / 18x18 mazes, 1024 steps): find the exit of a fresh perfect
  maze from a 3x3 local view; -1/1024 per step, +1 at the exit.
- LabyrinthExplore (same mazes): +1/n_free per newly visited tile, -1/1024 otherwise; ends once
  every tile is visited.

See each module's docstring for the full rules and the few deviations from POPGym. Actions are
``Discrete`` (board games flatten POPGym's ``(row, col)`` to ``row * size + col``); observations
are flat float32 one-hot vectors; every return lies in [-1, 1].
"""

from __future__ import annotations

from typing import Any, Callable

from ssmrl.envs.popgym.battleship import BattleshipEasy, BattleshipHard, BattleshipMedium
from ssmrl.envs.popgym.labyrinth import (
    LabyrinthEscapeEasy,
    LabyrinthEscapeHard,
    LabyrinthEscapeMedium,
    LabyrinthExploreEasy,
    LabyrinthExploreHard,
    LabyrinthExploreMedium,
)
from ssmrl.envs.popgym.minesweeper import MineSweeperEasy, MineSweeperHard, MineSweeperMedium

_CLASSES = (
    BattleshipEasy,
    BattleshipMedium,
    BattleshipHard,
    MineSweeperEasy,
    MineSweeperMedium,
    MineSweeperHard,
    LabyrinthEscapeEasy,
    LabyrinthEscapeMedium,
    LabyrinthEscapeHard,
    LabyrinthExploreEasy,
    LabyrinthExploreMedium,
    LabyrinthExploreHard,
)


def _builder(cls: type) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        env = cls()
        return env, env.default_params

    build.__name__ = f"make_{cls.__name__}"
    build.__doc__ = f"Build ``({cls.__name__}(), default_params)``."
    return build


ENVS: dict[str, Callable[[], tuple[Any, Any]]] = {cls.__name__: _builder(cls) for cls in _CLASSES}

__all__ = ["ENVS"]
