"""The POPGym memory suite in pure JAX: every game at Easy / Medium / Hard."""

from ssmrl.envs.popgym.classic import ENVS as _CLASSIC
from ssmrl.envs.popgym.grids import ENVS as _GRIDS

ENVS = {**_CLASSIC, **_GRIDS}

__all__ = ["ENVS"]
