"""One registry of sequence models: ``make(name, features=H, **options)`` and ``available()``.

Every entry returns a module keeping the two-mode contract of ``ssm.base``; agents and configs only
ever go through this registry.
"""

from __future__ import annotations

import inspect
from typing import Callable

from ssmrl.ssm import linear_attention, lru, mamba, mamba2, mingru, rnn, s4, s4d, s5, transformer
from ssmrl.ssm.base import SequenceLayer


def _builders() -> dict[str, Callable[..., SequenceLayer]]:
    return {
        "s5": s5.build,
        "s4": s4.build,
        "s4d": s4d.build,
        "mamba": mamba.build,
        "mamba2": mamba2.build,
        "gru": rnn.build_gru,
        "lstm": rnn.build_lstm,
        "mlp": rnn.build_mlp,
        "lru": lru.build,
        "mingru": mingru.build,
        "linear_attention": linear_attention.build,
        "transformer": transformer.build,
    }


def available() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(_builders())


def options(name: str) -> list[str]:
    """The keyword options a registry entry accepts (besides ``features``)."""
    builder = _get(name)
    return [p for p in inspect.signature(builder).parameters if p != "features"]


def _get(name: str):
    builders = _builders()
    if name not in builders:
        raise ValueError(f"unknown sequence model {name!r}; valid: {sorted(builders)}")
    return builders[name]


def check_options(name: str, opts: dict, where: str = "options") -> None:
    """Refuse options ``name`` does not take, or whose values do not fit the builder's annotations.

    Every ``int`` option of a registry entry is a size or a count, so it must be >= 1; ``float`` options
    must be finite. ``where`` names the options in the message (``model.options`` in a config)."""
    import math
    import typing

    builder = _get(name)
    valid = options(name)
    bad = sorted(set(opts) - set(valid))
    if bad:
        raise ValueError(f"unknown {where} {bad} for sequence model {name!r}; valid: {valid}")
    hints = typing.get_type_hints(builder)
    for key, value in opts.items():
        kinds = typing.get_args(hints.get(key)) or (hints.get(key),)
        if int in kinds and isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"{where}.{key} of {name!r} must be a positive integer, got {value!r}")
        elif float in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"{where}.{key} of {name!r} must be a finite number, got {value!r}")
        elif not any(isinstance(value, k) for k in kinds if isinstance(k, type)) or (
                isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(k.__name__ for k in kinds if isinstance(k, type))
            raise ValueError(f"{where}.{key} of {name!r} must be {expected}, got {value!r}")


def make(name: str, features: int, **opts) -> SequenceLayer:
    """Build the sequence model ``name`` with output width ``features``; bad options raise ``ValueError``."""
    check_options(name, opts)
    if not isinstance(features, int) or isinstance(features, bool) or features < 1:
        raise ValueError(f"features must be a positive int, got {features!r}")
    return _get(name)(features=features, **opts)
