"""ssmrl: memory-based reinforcement learning with state-space models, in JAX.

The repository root is the package (``pyproject.toml`` maps ``ssmrl`` to it), so the folders keep their
short names on disk while every import is namespaced: ``from ssmrl import ssm, envs, agents``.
"""

__version__ = "0.1.0"
