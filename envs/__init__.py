"""Pure-JAX environments in the gymnax 1.x API, behind one registry."""

from ssmrl.envs.registry import available, check_options, evaluation_splits, make

__all__ = ["available", "check_options", "evaluation_splits", "make"]
