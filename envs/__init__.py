"""Pure-JAX environments in the gymnax 1.x API, behind one registry."""

from ssmrl.envs.registry import available, evaluation_splits, make

__all__ = ["available", "evaluation_splits", "make"]
