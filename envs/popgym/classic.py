"""The eleven classic POPGym games at Easy / Medium / Hard: ``ENVS[name]() -> (env, env_params)``.

Difficulty table (POPGym, Morad et al. 2023):

| game | Easy | Medium | Hard |
|---|---|---|---|
| Autoencode | 1 deck | 2 decks | 3 decks |
| Concentration | 1 deck, colours | 2 decks, colours | 1 deck, ranks |
| CountRecall | 1 deck, colours | 2 decks, suits | 4 decks, ranks |
| HigherLower | 1 deck | 2 decks | 3 decks |
| MultiarmedBandit | 10 arms, 200 steps | 20 arms, 400 | 30 arms, 600 |
| RepeatFirst | 1 deck | 8 decks | 16 decks |
| RepeatPrevious | 1 deck, k=4 | 2 decks, k=32 | 3 decks, k=64 |
| StatelessCartPole | 200 steps | 400 | 600 |
| NoisyStatelessCartPole | sigma 0.1 | 0.2 | 0.3 |
| StatelessPendulum | 200 steps | 150 | 100 |
| NoisyStatelessPendulum | sigma 0.1 | 0.2 | 0.3 |

Rules: see the docstrings of ``cards``, ``bandit`` and ``control``.
"""

from __future__ import annotations

from typing import Any, Callable

from ssmrl.envs.popgym.bandit import MultiarmedBandit
from ssmrl.envs.popgym.cards import (
    Autoencode,
    Concentration,
    CountRecall,
    HigherLower,
    RepeatFirst,
    RepeatPrevious,
)
from ssmrl.envs.popgym.control import (
    NoisyStatelessCartPole,
    NoisyStatelessPendulum,
    StatelessCartPole,
    StatelessPendulum,
)

LEVELS = ("Easy", "Medium", "Hard")

# game -> (class, constructor kwargs for Easy, Medium, Hard)
SETTINGS: dict[str, tuple[type, tuple[dict, dict, dict]]] = {
    "Autoencode": (Autoencode, ({"num_decks": 1}, {"num_decks": 2}, {"num_decks": 3})),
    "Concentration": (
        Concentration,
        (
            {"num_decks": 1, "deck_type": "colors"},
            {"num_decks": 2, "deck_type": "colors"},
            {"num_decks": 1, "deck_type": "ranks"},
        ),
    ),
    "CountRecall": (
        CountRecall,
        (
            {"num_decks": 1, "deck_type": "colors"},
            {"num_decks": 2, "deck_type": "suits"},
            {"num_decks": 4, "deck_type": "ranks"},
        ),
    ),
    "HigherLower": (HigherLower, ({"num_decks": 1}, {"num_decks": 2}, {"num_decks": 3})),
    "MultiarmedBandit": (
        MultiarmedBandit,
        (
            {"num_bandits": 10, "episode_length": 200},
            {"num_bandits": 20, "episode_length": 400},
            {"num_bandits": 30, "episode_length": 600},
        ),
    ),
    "RepeatFirst": (RepeatFirst, ({"num_decks": 1}, {"num_decks": 8}, {"num_decks": 16})),
    "RepeatPrevious": (
        RepeatPrevious,
        ({"num_decks": 1, "k": 4}, {"num_decks": 2, "k": 32}, {"num_decks": 3, "k": 64}),
    ),
    "StatelessCartPole": (
        StatelessCartPole,
        ({"max_episode_length": 200}, {"max_episode_length": 400}, {"max_episode_length": 600}),
    ),
    "NoisyStatelessCartPole": (
        NoisyStatelessCartPole,
        ({"noise_sigma": 0.1}, {"noise_sigma": 0.2}, {"noise_sigma": 0.3}),
    ),
    "StatelessPendulum": (
        StatelessPendulum,
        ({"max_episode_length": 200}, {"max_episode_length": 150}, {"max_episode_length": 100}),
    ),
    "NoisyStatelessPendulum": (
        NoisyStatelessPendulum,
        ({"noise_sigma": 0.1}, {"noise_sigma": 0.2}, {"noise_sigma": 0.3}),
    ),
}


def _builder(cls: type, kwargs: dict) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        env = cls(**kwargs)
        return env, env.default_params

    return build


ENVS: dict[str, Callable[[], tuple[Any, Any]]] = {
    f"{game}{level}": _builder(cls, kwargs)
    for game, (cls, per_level) in SETTINGS.items()
    for level, kwargs in zip(LEVELS, per_level)
}

__all__ = ["ENVS", "LEVELS", "SETTINGS"]
