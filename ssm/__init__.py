"""Sequence layers with one contract: parallel ``scan`` over ``[T, B, H]`` with resets, and ``step``."""

from ssmrl.ssm.base import SequenceLayer, step_mode_outputs
from ssmrl.ssm.registry import available, make, options

__all__ = ["SequenceLayer", "available", "make", "options", "step_mode_outputs"]
