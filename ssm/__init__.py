"""Sequence layers with one contract: parallel ``scan`` over ``[T, B, H]`` with resets, and ``step``."""

from ssmrl.ssm.base import SequenceLayer, step_mode_outputs
from ssmrl.ssm.registry import available, check_options, make, options

__all__ = ["SequenceLayer", "available", "check_options", "make", "options", "step_mode_outputs"]
