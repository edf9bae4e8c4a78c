"""Settings of Meta-DT / Prompt-DT beyond the DT's own (``agents.dt.train.DTConfig``), checked at the edge."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ssmrl.agents.config import config_from_mapping

METHODS = ("meta_dt", "prompt_dt")
TASK_CONTEXTS = ("own", "task")


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """The context world model; defaults follow Meta-DT (GRU over the last 4 transitions, z of size 16)."""

    encoder: str = "gru"  # any ssm registry name
    encoder_options: tuple[tuple[str, Any], ...] = ()
    features: int = 128
    task_dim: int = 16
    context_len: int = 4
    batch_size: int = 256
    lr: float = 1e-3
    num_steps: int = 10_000
    steps_per_chunk: int = 1_000
    reward_weight: float = 1.0
    state_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class MetaDTConfig:
    """``method``: ``meta_dt`` (z in the state tokens, prompt = the agent's highest-error segment) or
    ``prompt_dt`` (no z, prompt = an expert segment of the task's data)."""

    method: str = "meta_dt"
    prompt_len: int = 5
    # Meta-DT: share of training segments whose prompt is replaced by the learned empty prompt, so the
    # same network also acts from z alone (zero-shot, and the few-shot exploration episode).
    prompt_dropout: float = 0.5
    # Meta-DT: where the z of a training step comes from. ``own``: the last k transitions of its own
    # episode (the paper). ``task``: a random window (any length 0..k) of a random episode of the same task
    # in the world model's data, so z says where the task is even where the episode's own past already
    # does (expert data; see docs/RESULTS.md) and the DT has a reason to read it.
    task_context: str = "own"


def validate_world_model(config: WorldModelConfig) -> WorldModelConfig:
    from ssmrl import ssm

    if config.encoder not in ssm.available():
        raise ValueError(f"unknown world-model encoder {config.encoder!r}; valid: {ssm.available()}")
    for name in ("features", "task_dim", "context_len", "batch_size", "num_steps", "steps_per_chunk"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"world_model.{name} must be a positive integer, got {value!r}")
    if not config.lr > 0:
        raise ValueError(f"world_model.lr must be > 0, got {config.lr!r}")
    for name in ("reward_weight", "state_weight"):
        if getattr(config, name) < 0:
            raise ValueError(f"world_model.{name} must be >= 0, got {getattr(config, name)!r}")
    if config.reward_weight + config.state_weight <= 0:
        raise ValueError("world_model.reward_weight + state_weight must be > 0")
    return config


def validate(config: MetaDTConfig, horizon: int | None = None) -> MetaDTConfig:
    if config.method not in METHODS:
        raise ValueError(f"unknown method {config.method!r}; valid: {list(METHODS)}")
    if not isinstance(config.prompt_len, int) or config.prompt_len < 1:
        raise ValueError(f"prompt_len must be a positive integer, got {config.prompt_len!r}")
    if horizon is not None and config.prompt_len > horizon:
        raise ValueError(f"prompt_len ({config.prompt_len}) must be <= the episode horizon ({horizon})")
    if config.task_context not in TASK_CONTEXTS:
        raise ValueError(f"unknown task_context {config.task_context!r}; valid: {list(TASK_CONTEXTS)}")
    if not 0 <= config.prompt_dropout < 1:
        raise ValueError(f"prompt_dropout must be in [0, 1), got {config.prompt_dropout!r}")
    return config


def world_model_from_mapping(values: Mapping[str, Any]) -> WorldModelConfig:
    return validate_world_model(config_from_mapping(WorldModelConfig, values, "world_model"))


def from_mapping(values: Mapping[str, Any]) -> MetaDTConfig:
    return validate(config_from_mapping(MetaDTConfig, values, "meta_dt"))
