"""Helpers over parameter pytrees shared by every agent."""

from __future__ import annotations

from typing import Any

import jax


def count_params(params: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)))
