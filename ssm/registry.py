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


def make(name: str, features: int, **opts) -> SequenceLayer:
    """Build the sequence model ``name`` with output width ``features``."""
    builder = _get(name)
    valid = options(name)
    bad = sorted(set(opts) - set(valid))
    if bad:
        raise ValueError(f"unknown option(s) {bad} for sequence model {name!r}; valid: {valid}")
    if not isinstance(features, int) or features < 1:
        raise ValueError(f"features must be a positive int, got {features!r}")
    return builder(features=features, **opts)
