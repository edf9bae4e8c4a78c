"""Atari100k (ale-py) behind the gymnax API: ``envs.make("atari/Pong", num_envs=16)``.

See :mod:`envs.atari.env` for the protocol and the two views (:class:`AtariEnv`, vmapped like any
gymnax env; :class:`VectorAtari`, explicit batch) and :mod:`envs.atari.scores` for the 26-game
score table and human-normalised scores (aggregates over games: ``train/report.py``). ale-py is
imported only when an env is built.
"""

from ssmrl.envs.atari.scores import (
    GAMES,
    HUMAN_SCORES,
    RANDOM_SCORES,
    SCORES,
    check_game,
    human_normalized_score,
    rom_name,
)


def __getattr__(name):  # lazy: keep ``import envs.atari`` free of ale-py and the env module
    if name in ("AtariEnv", "AtariParams", "AtariState", "VectorAtari", "make_atari",
                "make_vector_atari", "FRAME_SKIP", "MAX_EPISODE_FRAMES"):
        from ssmrl.envs.atari import env

        return getattr(env, name)
    raise AttributeError(name)


__all__ = [
    "GAMES", "HUMAN_SCORES", "RANDOM_SCORES", "SCORES", "check_game",
    "human_normalized_score", "rom_name",
    "AtariEnv", "AtariParams", "AtariState", "VectorAtari", "make_atari", "make_vector_atari",
    "FRAME_SKIP", "MAX_EPISODE_FRAMES",
]
