"""The Atari100k game list, its random / human reference scores, and the human-normalised score.

Pure Python and NumPy: importing this module never touches ale-py.

``human_normalized_score(game, score) = (score - random) / (human - random)``; 0 is a uniformly
random policy and 1 is the human reference of the Atari100k literature (SimPLe, DreamerV3, IRIS,
STORM, Drama all report against this table).
"""

from __future__ import annotations

import re

import numpy as np

# game -> (random score, human score)
SCORES: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "DemonAttack": (152.1, 1971.0),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Hero": (1027.0, 30826.4),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "RoadRunner": (11.5, 7845.0),
    "Seaquest": (68.4, 42054.7),
    "UpNDown": (533.4, 11693.2),
}

GAMES: tuple[str, ...] = tuple(SCORES)
RANDOM_SCORES: dict[str, float] = {g: r for g, (r, _) in SCORES.items()}
HUMAN_SCORES: dict[str, float] = {g: h for g, (_, h) in SCORES.items()}


def check_game(game: str) -> str:
    """Return ``game`` if it is one of the 26 Atari100k games, else raise ``ValueError`` naming them."""
    if game not in SCORES:
        raise ValueError(f"unknown Atari100k game {game!r}; valid: {list(GAMES)}")
    return game


def rom_name(game: str) -> str:
    """ale-py's ROM id of an Atari100k game: ``"MsPacman" -> "ms_pacman"``, ``"UpNDown" -> "up_n_down"``."""
    check_game(game)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def human_normalized_score(game: str, score):
    """``(score - random) / (human - random)`` for ``game``; ``score`` may be a number or an array."""
    random, human = SCORES[check_game(game)]
    if isinstance(score, (int, float)):
        return (float(score) - random) / (human - random)
    return (np.asarray(score, dtype=np.float64) - random) / (human - random)
