"""One registry of environments: ``make(name, **options) -> (env, env_params)`` and ``available()``.

Every environment speaks the gymnax 1.x API and auto-resets inside ``step`` (gymnax's
``Environment.step`` is the shared auto-reset wrapper: subclasses implement ``step_env`` and
``reset_env``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable


def _builders() -> dict[str, Callable[..., tuple[Any, Any]]]:
    import gymnax

    from ssmrl.envs.popgym import ENVS as POPGYM_ENVS

    builders: dict[str, Callable[..., tuple[Any, Any]]] = {}
    for name in gymnax.registered_envs:
        builders[name] = functools.partial(gymnax.make, name)
    builders.update(POPGYM_ENVS)
    from ssmrl.envs.meta import make_meta

    builders["meta"] = make_meta
    from ssmrl.envs.atari import GAMES as ATARI_GAMES  # Atari100k; ale-py loads when built
    from ssmrl.envs.atari import make_atari

    for game in ATARI_GAMES:
        builders[f"atari/{game}"] = functools.partial(make_atari, game)
    from ssmrl.envs.tasks import BUILDERS as TASK_BUILDERS  # offline meta-RL task distributions

    builders.update(TASK_BUILDERS)
    from ssmrl.envs.memory import ENVS as MEMORY_ENVS  # world-model memory benchmarks (S4WM)

    builders.update(MEMORY_ENVS)
    return builders


def available() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(_builders())


def _get(name: str) -> Callable[..., tuple[Any, Any]]:
    builders = _builders()
    if name not in builders:
        raise ValueError(f"unknown environment {name!r}; valid: {sorted(builders)}")
    return builders[name]


def check_options(name: str, options: dict, where: str = "options") -> None:
    """Refuse options that environment ``name``'s constructor does not name; constructors that take
    ``**kwargs`` (gymnax's) check their own. ``where`` names the options in the message."""
    parameters = inspect.signature(_get(name)).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    valid = [p.name for p in parameters]
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ValueError(f"unknown {where} {bad} for environment {name!r}; valid: {valid}")


def make(name: str, **options) -> tuple[Any, Any]:
    """Build environment ``name``: returns ``(env, env_params)``; unknown names and options raise ``ValueError``."""
    check_options(name, options)
    return _get(name)(**options)


def evaluation_splits(name: str, **options) -> dict[str, dict]:
    """The option sets an evaluation reports separately, keyed by split name.

    A plain environment has one split, itself. The meta-RL environment has the training pool, the
    training pool under projections never drawn in training, and the held-out pool.
    """
    if name not in _builders():
        raise ValueError(f"unknown environment {name!r}; valid: {available()}")
    if name == "meta":
        from ssmrl.envs.meta import evaluation_splits as meta_splits

        return meta_splits(**options)
    return {"train": dict(options)}
