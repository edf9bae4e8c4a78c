"""Building frozen agent configs from plain mappings (Hydra's output), checked at the edge."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

C = TypeVar("C")


def frozen_options(options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A mapping of options as sorted ``(key, value)`` pairs, lists as tuples: hashable and static."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))


def config_from_mapping(cls: type[C], values: Mapping[str, Any], label: str) -> C:
    """``cls(**values)``; unknown keys raise ``ValueError`` listing the valid ones; mapping-valued
    fields named ``*_options`` become :func:`frozen_options` pairs."""
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(values) - fields)
    if bad:
        raise ValueError(f"unknown {label} config key(s) {bad}; valid: {sorted(fields)}")
    values = {k: frozen_options(v) if k.endswith("_options") and isinstance(v, Mapping) else v
              for k, v in values.items()}
    return cls(**values)
