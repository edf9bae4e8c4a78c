"""Agents: pure functions over explicit state pytrees, with memory from ``ssm`` and envs from ``envs``."""
